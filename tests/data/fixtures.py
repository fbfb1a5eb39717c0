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


#: Words of each topic of :func:`write_manifest_collection`; texts draw from their topic.
TOPIC_WORDS = {
    "art": "painting museum canvas gallery portrait sculpture colour artist exhibit brush",
    "sport": "football match goal stadium player team league coach score season",
    "ocean": "ocean wave ship harbour sailor whale coast island tide storm",
}


def write_manifest_collection(
    folder: Path,
    per_topic: int = 8,
    labeled: bool = True,
    split: bool = True,
    fmt: str = "csv",
) -> Path:
    """A manifest of ``per_topic`` text-image pairs per topic in ``folder``: seeded English
    texts (``texts/<id>.txt`` for JSONL) and 8x8 images; a ``label`` and a ``split`` (every
    fourth pair of a topic in test) when asked. Returns the manifest's path."""
    import csv
    import json

    rng = np.random.default_rng(0)
    rows = []
    for topic, words in ((t, w.split()) for t, w in TOPIC_WORDS.items()):
        for n in range(per_topic):
            pair_id = f"{topic}-{n}"
            write_image(folder / "images" / f"{pair_id}.jpg")
            text = " ".join(rng.choice(words, size=12)) + f" item {pair_id}"
            row = {"id": pair_id, "image_path": f"images/{pair_id}.jpg"}
            if fmt == "csv":
                row["text"] = text
            else:
                (folder / "texts").mkdir(parents=True, exist_ok=True)
                (folder / "texts" / f"{pair_id}.txt").write_text(text, encoding="utf-8")
                row["text_path"] = f"texts/{pair_id}.txt"
            if labeled:
                row["label"] = topic
            if split:
                row["split"] = "test" if n % 4 == 3 else "train"
            rows.append(row)
    if fmt == "csv":
        path = folder / "collection.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        path = folder / "collection.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
