"""Images/s and texts/s of CLIP ViT-B/32 beside EfficientNet-Lite0, in one run on this machine.

CLIP ViT-B/32 is transformers' default CLIPConfig with random weights (the same compute as
real ones; fglab.features.random_model), saved as a model folder and loaded through the path
a user's folder takes (``--model-path``). Images: ``--images`` synthetic 640x480 JPEGs,
decoded, resized and embedded as ``fglab features`` does (2 decoding workers). Texts:
``--texts`` English texts cut to 38 characters, which the random model's byte-level
vocabulary reads as 40 tokens or so (the mean is printed), padded per batch of 64.

Then what is cheap, each on the model alone (the decoded batch held in memory): float32
under inference mode, channels-last input, bfloat16 autocast, dynamic int8 quantization of
the linear layers; each with its images/s or texts/s and the least cosine between its vectors
and float32's (same inputs).

    python benchmarks/clip_speed.py [--images 64] [--texts 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fglab.features import pretrained
from fglab.features.image import extract
from fglab.features.image_views import IMAGE_VIEWS
from fglab.features.model_folder import check_folder
from fglab.features.random_model import build_clip_folder

TEXT = (
    "the city council voted on a new plan for the harbour while fishing boats waited outside "
    "under grey skies and the football club announced its summer match schedule"
)


def write_images(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
        path = folder / f"{i}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def sentences(count: int) -> list[str]:
    rng = np.random.default_rng(1)
    return [" ".join(rng.choice(TEXT.split(), size=12))[:38] for _ in range(count)]


ROUNDS = 3


def rate(run, count: int) -> tuple[float, object]:
    """(items/s, output) of ``run()``: the best of ROUNDS timed calls after a warm-up (the
    cores are shared: the best round is the one least disturbed)."""
    run()
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        output = run()
        best = min(best, time.perf_counter() - start)
    return count / best, output


def least_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def end_to_end(paths: list[Path], folder, texts: list[str]) -> dict[str, float]:
    """images/s from files for both image models, texts/s for the CLIP text tower."""
    lite0 = IMAGE_VIEWS["image:efficientnet-lite0"]
    tower = pretrained.towers(folder)  # at fglab's default precision
    extractor = pretrained.image_extractor(folder)
    lite0_rate, _ = rate(lambda: extract(paths, lite0), len(paths))
    clip_rate, _ = rate(lambda: extract(paths, extractor, model=tower.image), len(paths))
    text_rate, _ = rate(lambda: np.vstack([tower.encode_texts(texts[i : i + 64])
                                           for i in range(0, len(texts), 64)]), len(texts))
    return {"precision": pretrained.default_precision(),
            "efficientnet-lite0 images/s": lite0_rate, "clip vit-b/32 images/s": clip_rate,
            "clip vit-b/32 texts/s": text_rate}


def variants(folder, pixels: torch.Tensor, texts: list[str]) -> dict[str, dict]:
    """Each cheap variant of the towers: rates and least cosine to float32."""
    settings = pretrained.image_settings(folder)
    results, reference = {}, {}
    for precision in pretrained.PRECISIONS:
        tower = pretrained.towers(folder, precision)
        with torch.inference_mode():
            images_per_s, images = rate(lambda t=tower: t.image(pixels).numpy(), len(pixels))
        texts_per_s, embedded = rate(lambda t=tower: t.encode_texts(texts), len(texts))
        reference.setdefault("images", images)
        reference.setdefault("texts", embedded)
        results[precision] = {
            "images/s": images_per_s, "texts/s": texts_per_s,
            "least image cosine": least_cosine(images, reference["images"]),
            "least text cosine": least_cosine(embedded, reference["texts"]),
        }
    model = pretrained.ImageTower(pretrained.load_model(folder), settings, "float32").eval()
    with torch.inference_mode():
        last = pixels.contiguous(memory_format=torch.channels_last)
        per_s, images = rate(lambda: model(last).numpy(), len(pixels))
    results["float32 channels-last"] = {
        "images/s": per_s, "least image cosine": least_cosine(images, reference["images"])}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/clip_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="clip-speed-") as tmp:
        folder = check_folder(build_clip_folder(Path(tmp) / "vit-b-32", tiny=False))
        paths = write_images(Path(tmp) / "images", args.images)
        texts = sentences(args.texts)
        tokens = pretrained.load_tokenizer(folder)(texts)["input_ids"]
        report = {"tokens per text": float(np.mean([len(t) for t in tokens])),
                  "end to end": end_to_end(paths, folder, texts)}
        side = pretrained.image_settings(folder).side
        pixels = torch.randint(0, 256, (args.images, 3, side, side), dtype=torch.uint8)
        report["variants"] = variants(folder, pixels, texts[:64])
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
