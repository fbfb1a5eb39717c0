"""Feature matrices as tensors, and encoding in batches, for the trained methods."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import sparse

ENCODE_BATCH = 512


def dense_tensor(features) -> torch.Tensor:
    """A (sparse or dense) feature matrix as a dense float32 tensor."""
    array = features.toarray() if sparse.issparse(features) else np.asarray(features)
    return torch.from_numpy(np.asarray(array, dtype=np.float32))


class FeatureRows:
    """A feature matrix kept as given, sparse tf-idf staying sparse (never a dense
    n x vocabulary array): indexing with rows or a slice densifies just those rows into a
    float32 tensor, one batch at a time."""

    def __init__(self, features) -> None:
        if isinstance(features, FeatureRows):
            features = features.matrix
        if sparse.issparse(features):
            self.matrix = sparse.csr_matrix(features, dtype=np.float32)
        else:
            self.matrix = np.asarray(features, dtype=np.float32)

    def __len__(self) -> int:
        return self.matrix.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def __getitem__(self, rows) -> torch.Tensor:
        return dense_tensor(self.matrix[rows])

    def subset(self, rows: np.ndarray) -> FeatureRows:
        return FeatureRows(self.matrix[rows])

    def concat(self, other: FeatureRows) -> FeatureRows:
        if sparse.issparse(self.matrix):
            return FeatureRows(sparse.vstack([self.matrix, sparse.csr_matrix(other.matrix)]))
        return FeatureRows(np.vstack([self.matrix, np.asarray(other.matrix)]))


def batched(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor | FeatureRows
) -> torch.Tensor:
    """``fn`` over rows of ``x`` in batches, without gradients; float32 even under the
    training loop's bfloat16 autocast. ``x`` may be FeatureRows (densified per batch)."""
    with torch.no_grad():
        parts = [fn(x[i : i + ENCODE_BATCH]) for i in range(0, len(x), ENCODE_BATCH)]
        return torch.cat(parts).float()


def sentence_columns(texts: FeatureRows, n_words: int) -> np.ndarray:
    """The dense sentence-embedding columns that follow the ``n_words`` tf-idf columns."""
    part = texts.matrix[:, n_words:]
    return part.toarray() if sparse.issparse(part) else np.asarray(part)
