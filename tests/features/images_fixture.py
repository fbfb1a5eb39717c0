"""Small image files of every awkward kind, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _photo(size: tuple[int, int] = (80, 60), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 255, size[0], dtype=np.float64)[None, :, None]
    noise = rng.integers(0, 60, size=(size[1], size[0], 3))
    pixels = np.clip(gradient * np.array([1.0, 0.5, 0.2]) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def write_images(folder: Path) -> dict[str, Path]:
    """name -> path: good files (jpeg, png_as_jpg, bmp_same_pixels, gray, cmyk, rgba) and bad
    ones (truncated, tiny, corrupt, missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.jpg" for name in (
        "jpeg", "png_as_jpg", "gray", "cmyk", "rgba", "truncated", "tiny", "corrupt", "missing")}
    paths["bmp_same_pixels"] = folder / "bmp_same_pixels.bmp"
    _photo(seed=1).save(paths["jpeg"], format="JPEG", quality=90)
    _photo(seed=2).save(paths["png_as_jpg"], format="PNG")  # a PNG under a .jpg name
    _photo(seed=2).save(paths["bmp_same_pixels"], format="BMP")  # the same pixels, lossless
    _photo(seed=3).convert("L").save(paths["gray"], format="JPEG")
    _photo(seed=4).convert("CMYK").save(paths["cmyk"], format="JPEG")
    _photo(seed=5).convert("RGBA").save(paths["rgba"], format="PNG")
    full = folder / "full.bin"
    _photo((400, 300), seed=6).save(full, format="JPEG", quality=95)
    paths["truncated"].write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    Image.new("RGB", (1, 1), (200, 10, 10)).save(paths["tiny"], format="PNG")
    paths["corrupt"].write_bytes(b"this is not an image at all")
    return paths
