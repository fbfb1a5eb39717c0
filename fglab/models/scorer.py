"""The dual-path score s(t, v) = w^T (t ⊙ v) + b on unit-length branch outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DualPathScorer(nn.Module):
    """``w`` starts at ones (so the first scores are cosines, already informative) and ``b`` at
    zero. Ranking all pairs is one matrix product: s = (t ⊙ w) · v + b."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(()))
        self.dropout = nn.Dropout(dropout)

    def all_pairs(self, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(n, d), (m, d) unit rows -> (n, m) scores; dropout on t ⊙ v while training."""
        if self.training and self.dropout.p > 0:
            product = self.dropout(t.unsqueeze(1) * v.unsqueeze(0))
            return product @ self.weight + self.bias
        return (t * self.weight) @ v.T + self.bias

    def fold(self, t: torch.Tensor) -> torch.Tensor:
        """t ⊙ w: one side of the inner product that ranks like the score."""
        return t * self.weight


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def bounded(x: torch.Tensor, scale: float) -> torch.Tensor:
    """x * tanh(|x| / scale) / |x|: x's direction with a length in [0, 1)."""
    norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return x * torch.tanh(norm / scale) / norm
