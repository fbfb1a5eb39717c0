"""A stand-in model for ``search_end_to_end.py``: tf-idf rows projected to 256-d unit vectors.

It gives a large synthetic index real text queries (tokenized and weighted by a trained run's
tf-idf) and an embedding size like a real model's. Saved as a NumPy array, no pickle. It lives
in its own module so that ``fglab serve`` can import it (with ``benchmarks/`` on PYTHONPATH).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fglab.method import RetrievalMethod

PROJECTION = "projection.npy"
CENTERS = "centers.npy"


class ProjectedText(RetrievalMethod):
    """``encode_texts``: x @ P, scaled to unit length. With ``centers`` (a clustered
    collection's), a text lands where that collection's items lie, as a real model's query
    lands near its matching items: the center nearest x @ P plus noise drawn from x (the
    collection's own recipe, center + N(0, I) / 16). Images are not supported."""

    text_input = "bag_of_words"

    def __init__(self, projection: np.ndarray, centers: np.ndarray | None = None) -> None:
        self.projection = np.ascontiguousarray(projection, dtype=np.float32)
        self.centers = None if centers is None else np.asarray(centers, dtype=np.float32)

    @classmethod
    def random(cls, vocabulary: int, dim: int = 256, seed: int = 0,
               centers: np.ndarray | None = None) -> ProjectedText:
        rng = np.random.default_rng(seed)
        return cls(rng.standard_normal((vocabulary, dim), dtype=np.float32), centers)

    def fit(self, train, validation=None) -> ProjectedText:
        return self

    def encode_texts(self, texts) -> np.ndarray:
        x = _unit(np.asarray(texts @ self.projection, dtype=np.float32))
        if self.centers is None:
            return x
        mix = np.random.default_rng(1).standard_normal((x.shape[1],) * 2, dtype=np.float32)
        nearest = self.centers[np.argmax(x @ self.centers.T, axis=1)]
        return _unit(nearest + (x @ mix) / 16)

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        raise ValueError("the synthetic benchmark model embeds texts only")

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / PROJECTION, self.projection, allow_pickle=False)
        if self.centers is not None:
            np.save(folder / CENTERS, self.centers, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> ProjectedText:
        centers = Path(folder) / CENTERS
        return cls(np.load(Path(folder) / PROJECTION, allow_pickle=False),
                   np.load(centers, allow_pickle=False) if centers.is_file() else None)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
