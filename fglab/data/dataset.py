"""The generic containers of a collection fglab trains on, whatever it was read from (a
Wikipedia-layout folder or a manifest): a :class:`CrossModalDataset` of text-image pairs,
split into a train and a test :class:`Split`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fglab.data.problems import Problem


@dataclass
class Split:
    """The usable pairs of one split, with everything aligned row by row."""

    name: str
    text_ids: list[str]
    image_ids: list[str]
    labels: np.ndarray  # (n,) 0-based category index
    texts: list[str]
    titles: list[str]
    image_paths: list[Path | None]
    shipped: dict[str, np.ndarray] = field(default_factory=dict)  # view -> (n, d)

    def __len__(self) -> int:
        return len(self.text_ids)

    def subset(self, rows: np.ndarray | list[int], name: str | None = None) -> Split:
        """The split restricted to ``rows`` (e.g. a validation part of train)."""
        rows = np.asarray(rows, dtype=int)
        return Split(
            name=name or self.name,
            text_ids=[self.text_ids[i] for i in rows],
            image_ids=[self.image_ids[i] for i in rows],
            labels=self.labels[rows],
            texts=[self.texts[i] for i in rows],
            titles=[self.titles[i] for i in rows],
            image_paths=[self.image_paths[i] for i in rows],
            shipped={k: v[rows] for k, v in self.shipped.items()},
        )


@dataclass
class CrossModalDataset:
    """A data set of text-image pairs with categories, split into train and test."""

    name: str
    path: Path
    language: str  # "en" or "zh"
    categories: list[str]
    train: Split
    test: Split
    problems: list[Problem]
    stopwords: frozenset[str]
    has_images: bool

    def split(self, name: str) -> Split:
        """The ``"train"`` or ``"test"`` split."""
        if name not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {name!r}")
        return self.train if name == "train" else self.test
