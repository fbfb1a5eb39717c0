"""A small stand-in for a trained pipeline and the image featurizer, with known answers.

Texts embed by counting each category's keywords; images embed by their mean colour (red =
animals, green = boats, blue = music). Search results are therefore predictable.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

CATEGORIES = ["animals", "boats", "music"]
KEYWORDS = {
    "animals": ("cat", "dog", "horse", "zoo"),
    "boats": ("ship", "sail", "boat", "naval", "harbour"),
    "music": ("piano", "song", "guitar", "concert"),
}
COLOURS = {"animals": (220, 30, 30), "boats": (30, 200, 40), "music": (30, 40, 220)}


class FakePipeline:
    dataset_name = "fake"
    method_name = "fake-keywords"
    image_view = "image:fake-rgb"
    text_view = "text:fake"
    language = "en"
    categories = CATEGORIES
    text_features = None  # raw text goes to encode_texts (no shipped text view is used)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = text.lower().split()
            rows.append([sum(w in KEYWORDS[c] for w in words) + 0.01 for c in CATEGORIES])
        return _unit(np.array(rows, dtype=np.float64))

    def encode_image_features(self, features: np.ndarray) -> np.ndarray:
        return _unit(np.asarray(features, dtype=np.float64) + 1.0)

    def ignores_text(self, text: str) -> bool:
        """No keyword: every such text embeds to the same vector."""
        return not any(w in KEYWORDS[c] for w in text.lower().split() for c in CATEGORIES)

    def encode_split(self, split) -> tuple[np.ndarray, np.ndarray]:
        features = np.array([COLOURS[CATEGORIES[int(i) % 3]] for i in split.labels], float)
        return self.encode_image_features(features), self.encode_texts(split.texts)

    def save(self, run_dir: Path) -> None:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps({"method": self.method_name}))

    @classmethod
    def load(cls, run_dir: Path) -> FakePipeline:
        config = json.loads((Path(run_dir) / "config.json").read_text())
        assert config["method"] == cls.method_name
        return cls()


class SiftPipeline(FakePipeline):
    """Like a run trained on eng-wiki: its image view is shipped features, not files."""

    image_view = "image:sift"


def fake_featurizer(paths, view, cache_dir=None, progress=False):
    """Mean RGB of each image; unreadable files give zeros and a reason, like the real one."""
    rows, failures = np.zeros((len(paths), 3)), {}
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                rows[i] = np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
        except OSError as error:
            failures[i] = f"{Path(path).name}: {error}"
    return rows, failures


def fake_upload_featurizer(data: bytes, view: str) -> np.ndarray:
    """Mean RGB of an image held in memory; a ValueError if it cannot be read."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.float64).mean(axis=(0, 1))
    except OSError as error:
        raise ValueError(f"unreadable: {error}") from error


def decoding_upload_featurizer(data: bytes, view: str) -> np.ndarray:
    """Mean RGB of an upload decoded as the real featurizer decodes it (every mode and
    format, too-small images refused), without its network."""
    from fglab.features.image import decode_image

    return decode_image(data, 16).reshape(-1, 3).mean(axis=0)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def colour_image(path: Path, category: str, size: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), COLOURS[category]).save(path, format="JPEG")
    return path


def write_collection(folder: Path, per_category: int = 4) -> Path:
    """A CSV manifest with ``per_category`` items per category, each with text and image."""
    rows = []
    for category in CATEGORIES:
        for n in range(per_category):
            item_id = f"{category}-{n}"
            colour_image(folder / "images" / f"{item_id}.jpg", category)
            words = " ".join(KEYWORDS[category][: 1 + n % len(KEYWORDS[category])])
            rows.append(
                {
                    "id": item_id,
                    "text": f"A story about {words} number {n}",
                    "image_path": f"images/{item_id}.jpg",
                    "label": category,
                }
            )
    manifest = folder / "collection.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "image_path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def build_fake_index(folder: Path, kind: str = "flat", pipeline=None) -> Path:
    """Build and save an index of :func:`write_collection` with the fake pipeline."""
    from fglab.data.manifest import load_manifest
    from fglab.index.store import IndexSettings
    from fglab.ingest.build import build_index
    from fglab.retriever import MODEL_DIR

    pipeline = pipeline or FakePipeline()
    manifest = load_manifest(write_collection(folder / "collection"))
    index, _ = build_index(
        pipeline, manifest, settings=IndexSettings(kind=kind), featurizer=fake_featurizer
    )
    out = folder / "index"
    index.save(out, write_extra=lambda tmp: pipeline.save(tmp / MODEL_DIR))
    return out


def open_fake_retriever(index_dir: Path, **kwargs):
    from fglab.retriever import Retriever

    return Retriever.open(
        index_dir, load_pipeline=FakePipeline.load, featurizer=fake_upload_featurizer, **kwargs
    )
