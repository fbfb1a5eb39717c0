"""Fine-grained labels: how hard each training pair is, from siamese text similarities.

For a text-image pair (t_i, v_j) the siamese network's similarity of t_i and t_j (the text
that comes with v_j) is scaled to h in [0, 1]. A positive is hard when h is low, a negative
when h is high. The label of a pair is that hardness; its loss weight is 1 + strength * label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import sparse

from fglab.config import LabelConfig


def scale_similarities(similarities: np.ndarray) -> np.ndarray:
    """Min-max scaling to [0, 1] (monotone; a constant matrix maps to 0.5)."""
    s = np.asarray(similarities, dtype=np.float64)
    low, high = float(s.min()), float(s.max())
    if high - low < 1e-12:
        return np.full_like(s, 0.5)
    return (s - low) / (high - low)


def bin_labels(h: np.ndarray, levels: int = 9) -> np.ndarray:
    """Round h in [0, 1] to ``levels`` values 1/(levels+1) ... levels/(levels+1)
    (0.1 ... 0.9 for 9 levels, as in the authors' prototype). Monotone non-decreasing."""
    steps = np.clip(np.rint(np.asarray(h) * (levels + 1)), 1, levels)
    return steps / (levels + 1)


def similarity_labels(h: np.ndarray, config: LabelConfig) -> np.ndarray:
    """h as configured: continuous, binned, or (uniform) all 0.5."""
    if config.mode == "uniform":
        return np.full_like(np.asarray(h, dtype=np.float64), 0.5)
    if config.mode == "binned":
        return bin_labels(h, config.levels)
    return np.asarray(h, dtype=np.float64)


def hardness(h: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """1 - h for positives (dissimilar texts: hard), h for negatives (similar texts: hard)."""
    return np.where(positive, 1.0 - h, h)


def pair_weights(h: np.ndarray, positive: np.ndarray, config: LabelConfig) -> np.ndarray:
    """Loss weight of each pair: 1 + strength * hardness; all 1 for uniform labels."""
    if config.mode == "uniform":
        return np.ones_like(np.asarray(h, dtype=np.float64))
    return 1.0 + config.strength * hardness(similarity_labels(h, config), positive)


# -- grades of text pairs, block by block ---------------------------------------------------
# A teacher keeps one vector per text and grades the pairs of a block of rows and columns
# when asked: a batch's b x b block while training, a sample for the report. No n x n array.

#: Texts whose pairs with every text set the range of a teacher's similarities: every pair
#: up to this many texts; beyond, the pairs of a seeded sample of this many texts with all
#: texts (a grade outside that range is clipped to [0, 1]).
RANGE_SAMPLE = 4096
_BLOCK = 256  # rows of a similarity block while looking for the range (256 x n floats)


@dataclass
class ScaledSimilarity:
    """A teacher's text-text similarity q_i . k_j, min-max scaled to [0, 1] by its range over
    the graded texts (see RANGE_SAMPLE); ``queries`` and ``keys`` are (n, d) float32."""

    queries: np.ndarray
    keys: np.ndarray
    low: float
    high: float

    @classmethod
    def fit(
        cls, queries: np.ndarray, keys: np.ndarray | None = None, seed: int = 0
    ) -> ScaledSimilarity:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        keys = queries if keys is None else np.ascontiguousarray(keys, dtype=np.float32)
        n = len(queries)
        rows = np.arange(n)
        if n > RANGE_SAMPLE:
            rows = np.sort(np.random.default_rng(seed).choice(n, RANGE_SAMPLE, replace=False))
        low, high = math.inf, -math.inf
        for start in range(0, len(rows), _BLOCK):
            block = queries[rows[start : start + _BLOCK]] @ keys.T
            low, high = min(low, float(block.min())), max(high, float(block.max()))
        return cls(queries, keys, low, high)

    def __len__(self) -> int:
        return len(self.queries)

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """(len(rows), len(cols)) scaled similarities h (float64; 0.5 if all were equal)."""
        s = (self.queries[rows] @ self.keys[cols].T).astype(np.float64)
        if self.high - self.low < 1e-12:
            return np.full_like(s, 0.5)
        return np.clip((s - self.low) / (self.high - self.low), 0.0, 1.0)


@dataclass
class CosineSimilarity:
    """Cosines of sparse nonnegative unit rows (tf-idf): already in [0, 1], so no range is
    needed (an empty text has cosine 0 with every text)."""

    rows: sparse.csr_matrix

    def __len__(self) -> int:
        return self.rows.shape[0]

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        product = self.rows[rows] @ self.rows[cols].T
        return np.clip(product.toarray().astype(np.float64), 0.0, 1.0)


class Similarity(Protocol):
    def __len__(self) -> int: ...

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray: ...


@dataclass
class TextGrades:
    """Grades h(i, j) in [0, 1] of the pairs of n texts by one teacher or, with ``graded_by``
    ((n, K) bool: which of the K teachers may grade text i), by cross-fitted teachers: (i, j)
    gets the mean of (F(i, j) + F(j, i)) / 2, F(i, j) the mean of the similarities of the
    teachers that grade i."""

    teachers: list[Similarity]
    graded_by: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.teachers[0])

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows, cols = np.asarray(rows), np.asarray(cols)
        if self.graded_by is None:
            return self.teachers[0].block(rows, cols)
        return (self._by_first(rows, cols) + self._by_first(cols, rows).T) / 2

    def _by_first(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        graders = self.graded_by[rows]
        total = np.zeros((len(rows), len(cols)))
        for k, teacher in enumerate(self.teachers):
            mine = np.flatnonzero(graders[:, k])
            if mine.size:
                total[mine] += teacher.block(rows[mine], cols)
        return total / graders.sum(axis=1, keepdims=True)

    def batch_weights(
        self, rows: np.ndarray, labels: np.ndarray, config: LabelConfig
    ) -> np.ndarray:
        """Loss weights of the (len(rows), len(rows)) pairs of a batch of texts."""
        positive = labels[rows][:, None] == labels[rows][None, :]
        return pair_weights(self.block(rows, rows), positive, config)
