"""Locating image files and telling their real format from their content, not their name."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def find_image_file(image_dir: Path, image_id: str) -> tuple[Path | None, bool]:
    """The file of ``image_id`` in ``image_dir`` and whether it was found under a padded name.

    Exact names (any common extension) come first; a name whose stem only differs by
    surrounding whitespace (``"22 .jpg"`` for id ``22``) is accepted and flagged.
    """
    for ext in IMAGE_EXTENSIONS:
        for candidate in (image_dir / f"{image_id}{ext}", image_dir / f"{image_id}{ext.upper()}"):
            if candidate.is_file():
                return candidate, False
    if image_dir.is_dir():
        for candidate in sorted(image_dir.iterdir()):
            stem, ext = candidate.stem, candidate.suffix.lower()
            if ext in IMAGE_EXTENSIONS and stem != image_id and stem.strip() == image_id:
                return candidate, True
    return None, False


def sniff_image_format(path: Path) -> str | None:
    """The format Pillow reads from the file's header ("JPEG", "PNG", ...), or None."""
    try:
        with Image.open(path) as image:
            return image.format
    except (UnidentifiedImageError, OSError):
        return None
