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


def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn`` over rows of ``x`` in batches, without gradients; float32 even under the
    training loop's bfloat16 autocast."""
    with torch.no_grad():
        parts = [fn(x[i : i + ENCODE_BATCH]) for i in range(0, len(x), ENCODE_BATCH)]
        return torch.cat(parts).float()
