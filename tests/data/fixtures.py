"""Tiny Wikipedia-layout data sets written by the tests, broken on purpose where asked."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = ["art", "sport"]


def write_image(path: Path, fmt: str = "JPEG", size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)


def write_dataset(
    root: Path,
    train: list[tuple[str, str, str]],
    test: list[tuple[str, str, str]],
    texts: dict[str, str],
    images: dict[str, tuple[str, str]] | None = None,
    text_ext: str = ".xml",
) -> Path:
    """``images`` maps image_id -> (file name under images/<category>/, format or "GARBAGE")."""
    root.mkdir(parents=True)
    (root / "categories.list").write_text("\n".join(CATEGORIES) + "\n")
    for name, rows in (("trainset_txt_img_cat.list", train), ("testset_txt_img_cat.list", test)):
        (root / name).write_text("\n".join("\t".join(r) for r in rows))
    (root / "texts").mkdir()
    for text_id, body in texts.items():
        (root / "texts" / f"{text_id}{text_ext}").write_text(body, encoding="utf-8")
    rows_by_image = {r[1]: r for r in train + test}
    for image_id, (file_name, fmt) in (images or {}).items():
        label = rows_by_image[image_id][2] if len(rows_by_image[image_id]) > 2 else "1"
        index = int(label) - 1 if label.isdigit() and int(label) <= len(CATEGORIES) else 0
        category = CATEGORIES[index]
        path = root / "images" / category / file_name
        if fmt == "GARBAGE":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"this is not an image")
        else:
            write_image(path, fmt)
    return root


def xml_doc(text: str, name: str = "Title") -> str:
    return f'<document id="x" name="{name}" cat="1">\n<text>{text}</text>\n</document>\n'
