"""The views ``image:clip`` and ``text:clip``: both towers of a pretrained image-text model
(CLIP, Chinese-CLIP or SigLIP) read from a local folder with ``transformers``, with the hub
offline and ``local_files_only`` (nothing is ever downloaded). Each view gives the model's
projected, L2-normalized embedding, so an image row and a text row of the same model are
comparable as they are: zero-shot search is their inner product.

Images go through fglab's decoder (:func:`fglab.features.image.decode_image`, which reports a
bad file by row instead of failing the batch) with the settings of the folder's own image
processor, loaded by transformers with its PIL backend (the "fast" one needs torchvision):
the resize filter, a resize of the shorter side and a center crop (or a squash to a square
where the processor does not crop), the rescale factor, mean and standard deviation.
Texts go through the folder's tokenizer, cut to the model's context length.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fglab.features.image import ImageExtractor, features_of_bytes_with
from fglab.features.model_folder import (
    ARCHITECTURES,
    LAYOUT,
    PREPROCESSOR,
    WEIGHTS,
    ModelFolder,
    go_offline,
    use_model_folder,
)
from fglab.hardware import fast_bfloat16

#: Bump when preprocessing or encoding changes, so stored vectors of the old way stop hitting.
VERSION = 1
#: How the towers compute: "float32"; "bfloat16" (autocast); "int8" (the linear layers
#: dynamically quantized). benchmarks/clip_speed.py measures each against float32
#: (docs/pretrained.md): on CLIP ViT-B/32 bfloat16 kept every vector within cosine 0.9999 of
#: float32's and ran faster; int8's texts fell below 0.999. So bfloat16 where the CPU runs it
#: natively, else float32.
PRECISIONS = ("float32", "bfloat16", "int8")


def default_precision() -> str:
    return "bfloat16" if fast_bfloat16() else "float32"


def prepared(model: nn.Module, precision: str) -> nn.Module:
    """``model`` ready to run at ``precision`` (int8: a quantized copy of its linear layers)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "int8":
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    return model


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on the CPU for "bfloat16"; nothing for the others."""
    if precision == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _pooled(output) -> torch.Tensor:
    """The embedding of ``get_*_features``: a tensor, or (transformers 5) its pooler output."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@functools.lru_cache(maxsize=4)
def model_config(folder: ModelFolder):
    """The folder's transformers config (no weights read)."""
    go_offline()
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder.path, local_files_only=True)
    except Exception as error:  # transformers raises many kinds on a bad config: one line
        raise ValueError(f"{folder.path}: config.json does not load ({_first_line(error)}); "
                         f"{LAYOUT}") from error


def embedding_dim(folder: ModelFolder) -> int:
    """The width of both views: the joint space's dimension."""
    config = model_config(folder)
    if folder.model_type == "siglip":
        text = config.text_config
        return int(getattr(text, "projection_size", None) or text.hidden_size)
    return int(config.projection_dim)


@dataclass(frozen=True)
class ImageSettings:
    """What the folder's image processor does, as fglab's decoder and model apply it."""

    side: int  # decoded square (the shorter side's size when cropping)
    crop_to: int  # the center crop the model sees (== side without a crop)
    crop: bool
    resample: int
    rescale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]


@functools.lru_cache(maxsize=4)
def image_settings(folder: ModelFolder) -> ImageSettings:
    """The settings of the folder's image processor (PIL backend)."""
    go_offline()
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(
            folder.path, local_files_only=True, backend="pil"
        )
    except Exception as error:  # a broken or foreign preprocessor_config.json: one line
        raise ValueError(f"{folder.path / PREPROCESSOR}: does not load "
                         f"({_first_line(error)}); {LAYOUT}") from error
    crop = bool(getattr(processor, "do_center_crop", False))
    where = folder.path / PREPROCESSOR
    size = _side(processor.size, where)
    crop_to = _side(processor.crop_size, where) if crop else size
    normalize = bool(getattr(processor, "do_normalize", True))
    return ImageSettings(
        max(size, crop_to), crop_to, crop, int(processor.resample),
        float(processor.rescale_factor) if processor.do_rescale else 1.0,
        tuple(float(m) for m in processor.image_mean) if normalize else (0.0, 0.0, 0.0),
        tuple(float(s) for s in processor.image_std) if normalize else (1.0, 1.0, 1.0),
    )


def _side(size, where: Path) -> int:
    """The square side of a processor size ({"shortest_edge": s} or {"height", "width"})."""
    get = size.get if isinstance(size, dict) else lambda name: getattr(size, name, None)
    side = get("shortest_edge") or get("height")
    if not side:
        raise ValueError(f"{where}: unsupported image size {size!r}; {LAYOUT}")
    return int(side)


def image_extractor(folder: ModelFolder) -> ImageExtractor:
    """The extractor of ``image:clip`` for this folder; its store name holds the weights'
    checksum, so other weights never hit."""
    settings = image_settings(folder)
    return ImageExtractor(
        f"{folder.model_type}-{folder.key}-{default_precision()}", settings.side, settings.crop,
        "float32", VERSION, embedding_dim(folder), settings.resample,
    )


def text_store_name(folder: ModelFolder) -> str:
    """The feature store of ``text:clip`` for this folder."""
    return f"{folder.model_type}-{folder.key}-{default_precision()}-text-v{VERSION}"


class ImageTower(nn.Module):
    """uint8 pixels (n, 3, side, side) -> (n, d) L2-normalized image embeddings."""

    def __init__(self, model: nn.Module, settings: ImageSettings, precision: str) -> None:
        super().__init__()
        self.model = model
        self.settings = settings
        self.precision = precision
        self.register_buffer("mean", torch.tensor(settings.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(settings.std).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        side, crop_to = self.settings.side, self.settings.crop_to
        if crop_to < side:  # the processor's center crop inside its shorter-side resize
            start = (side - crop_to) // 2
            pixels = pixels[..., start : start + crop_to, start : start + crop_to]
        inputs = (pixels.float() * self.settings.rescale - self.mean) / self.std
        with autocast(self.precision):
            embedded = _pooled(self.model.get_image_features(pixel_values=inputs))
        return F.normalize(embedded.float(), dim=-1)


@dataclass
class Towers:
    """A loaded model: its image tower and a text encoder."""

    image: ImageTower
    encode_texts: Callable[[list[str]], np.ndarray]


def towers(folder: ModelFolder, precision: str | None = None) -> Towers:
    """The folder's model loaded once per process (inference only), run at ``precision``
    (default: :func:`default_precision`)."""
    return _towers(folder, precision or default_precision())


@functools.lru_cache(maxsize=2)
def _towers(folder: ModelFolder, precision: str) -> Towers:
    model = prepared(load_model(folder), precision)
    tokenizer = load_tokenizer(folder)
    limit = int(getattr(model.config.text_config, "max_position_embeddings", 77))
    max_length = min(limit, int(getattr(tokenizer, "model_max_length", limit) or limit))
    # SigLIP was trained on texts padded to its full length, unmasked; CLIP-style models
    # mask their padding
    siglip = folder.model_type == "siglip"

    def encode(texts: list[str]) -> np.ndarray:
        batch = tokenizer(list(texts), padding="max_length" if siglip else True,
                          truncation=True, max_length=max_length, return_tensors="pt")
        if siglip:
            batch.pop("attention_mask", None)
        with torch.inference_mode(), autocast(precision):
            embedded = _pooled(model.get_text_features(**batch))
        return F.normalize(embedded.float(), dim=-1).numpy()

    return Towers(ImageTower(model, image_settings(folder), precision).eval(), encode)


def use_model(path: str | Path) -> ModelFolder:
    """The folder at ``path`` checked, made current and loaded: every problem with it (files,
    config, weights, tokenizer, processor) is one ValueError line before any other work."""
    folder = use_model_folder(path)
    towers(folder)
    image_extractor(folder)
    return folder


def load_model(folder: ModelFolder) -> nn.Module:
    """The model in float32 from the folder's weights, which must match its config exactly
    (a ValueError line naming the folder otherwise)."""
    go_offline()
    check_weights_file(folder.path / WEIGHTS)
    import transformers
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # fglab reports problems itself, in one line
    transformers_logging.set_verbosity_error()

    kind = getattr(transformers, ARCHITECTURES[folder.model_type])
    try:
        model, info = kind.from_pretrained(
            folder.path, local_files_only=True, output_loading_info=True, dtype=torch.float32
        )
    except Exception as error:  # shape mismatches and the like: one line naming the folder
        raise ValueError(f"{folder.path / WEIGHTS}: does not fit config.json "
                         f"({_first_line(error)}); {LAYOUT}") from error
    problem = _loading_problem(info)
    if problem:
        raise ValueError(f"{folder.path / WEIGHTS}: does not fit config.json ({problem}); "
                         f"{LAYOUT}")
    return model.eval()


def _loading_problem(info: dict) -> str:
    """What the loading info says is wrong: weights missing, of another shape, or extra."""
    for name, what in (("missing_keys", "missing"), ("mismatched_keys", "of another shape"),
                       ("unexpected_keys", "not in the model")):
        keys = sorted(str(k if isinstance(k, str) else k[0]) for k in info.get(name) or ())
        if keys:
            return f"{len(keys)} weights {what}, e.g. {keys[0]}"
    return ""


def check_weights_file(weights: Path) -> None:
    """A ValueError line if the safetensors file cannot be read whole (e.g. truncated)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            names = list(handle.keys())
            if names:
                handle.get_slice(names[-1])
    except Exception as error:  # SafetensorError, OSError, ...: one line
        raise ValueError(f"{weights}: damaged or truncated ({_first_line(error)}); copy the "
                         "model folder again") from error


def load_tokenizer(folder: ModelFolder):
    go_offline()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder.path, local_files_only=True)
    except Exception as error:  # missing or broken tokenizer files: one line
        raise ValueError(f"{folder.path}: the tokenizer does not load ({_first_line(error)}); "
                         f"{LAYOUT}") from error


def image_of_bytes(folder: ModelFolder, data: bytes) -> np.ndarray:
    """(d,) embedding of one image held in memory (an upload); ImageProblem if undecodable."""
    return features_of_bytes_with(data, image_extractor(folder), towers(folder).image)


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
