"""Fine-grained labels: how hard each training pair is, from siamese text similarities.

For a text-image pair (t_i, v_j) the siamese network's similarity of t_i and t_j (the text
that comes with v_j) is scaled to h in [0, 1]. A positive is hard when h is low, a negative
when h is high. The label of a pair is that hardness; its loss weight is 1 + strength * label.
"""

from __future__ import annotations

import numpy as np

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
