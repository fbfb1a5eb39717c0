"""The dual-path score s(t, v) = w^T (t ⊙ v) + b on unit-length branch outputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fglab.config import SCORE_DROPOUTS


class DualPathScorer(nn.Module):
    """``w`` starts at ones (so the first scores are cosines, already informative) and ``b`` at
    zero. Ranking all pairs is one matrix product: s = (t ⊙ w) · v + b.

    While training, dropout acts on t ⊙ v of every pair. ``dropout_kind`` "bernoulli" draws a
    mask per pair and dimension: an (n, m, d) tensor per batch, which dominated a training
    step. "gaussian" draws the score's dropout noise directly (Wang & Manning, "Fast dropout
    training", ICML 2013): the dropped score is a sum of d independent terms, so it is close
    to normal with the exact mean (t ⊙ w) · v + b and the exact variance
    p / (1 - p) · (t ⊙ w)² · v²; two (n, d) x (d, m) products and an (n, m) draw."""

    def __init__(self, dim: int, dropout: float, dropout_kind: str = "gaussian") -> None:
        super().__init__()
        if dropout_kind not in SCORE_DROPOUTS:
            raise ValueError(
                f"score dropout must be one of {SCORE_DROPOUTS}, got {dropout_kind!r}"
            )
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(()))
        self.dropout = nn.Dropout(dropout)
        self.dropout_kind = dropout_kind

    def all_pairs(self, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(n, d), (m, d) unit rows -> (n, m) scores; dropout on t ⊙ v while training."""
        p = self.dropout.p
        if not self.training or p == 0:
            return self.fold(t) @ v.T + self.bias
        if self.dropout_kind == "bernoulli":
            product = self.dropout(t.unsqueeze(1) * v.unsqueeze(0))  # (n, m, d)
            return product @ self.weight + self.bias
        folded = self.fold(t)
        mean = folded @ v.T + self.bias
        variance = (folded.square() @ v.square().T) * (p / (1.0 - p))
        # the epsilon keeps the gradient of the square root finite where a variance is 0
        return mean + (variance + 1e-12).sqrt() * torch.randn_like(mean)

    def fold(self, t: torch.Tensor) -> torch.Tensor:
        """t ⊙ w: one side of the inner product that ranks like the score."""
        return t * self.weight


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def bounded(x: torch.Tensor, scale: float) -> torch.Tensor:
    """x * tanh(|x| / scale) / |x|: x's direction with a length in [0, 1)."""
    norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return x * torch.tanh(norm / scale) / norm
