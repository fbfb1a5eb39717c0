"""Feature matrices as tensors, and encoding in batches, for the trained methods."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import sparse

# Rows per encoding batch: the text branch holds (filters, words, batch) graph signals, and
# past ~128 documents they outgrow the CPU caches (eng-wiki validation: 512 rows per batch
# encoded 20-30% slower than 128).
ENCODE_BATCH = 128


def dense_tensor(features) -> torch.Tensor:
    """A (sparse or dense) feature matrix as a dense float32 tensor."""
    array = features.toarray() if sparse.issparse(features) else np.asarray(features)
    return torch.from_numpy(np.asarray(array, dtype=np.float32))


def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn`` over rows of ``x`` in batches, without gradients; float32 even under the
    training loop's bfloat16 autocast."""
    with torch.no_grad():
        parts = [fn(x[i : i + ENCODE_BATCH]) for i in range(0, len(x), ENCODE_BATCH)]
        return torch.cat(parts).float()
