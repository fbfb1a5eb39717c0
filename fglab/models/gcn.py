"""Chebyshev graph convolution (Defferrard et al., NeurIPS 2016) with a torch.sparse operator."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import sparse
from torch import nn


def sparse_tensor(matrix: sparse.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a coalesced float32 torch COO tensor."""
    coo = sparse.coo_matrix(matrix)
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(
        indices, values, coo.shape, check_invariants=True
    ).coalesce()


class _SymmetricSparseMM(torch.autograd.Function):
    """y = L x for a constant symmetric sparse L. Written by hand because torch's generic
    backward of ``torch.sparse.mm`` is several times slower than the forward here; for a
    symmetric L the gradient is just L g."""

    @staticmethod
    def forward(ctx, laplacian: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.laplacian = laplacian
        return torch.sparse.mm(laplacian, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, torch.sparse.mm(ctx.laplacian, grad.contiguous())


def laplacian_mm(laplacian: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return _SymmetricSparseMM.apply(laplacian, x)


class ChebConv(nn.Module):
    """y[v, b, o] = sum_k sum_f theta[k, f, o] * (T_k(L~) x)[v, b, f] + bias[o], where T_k are
    Chebyshev polynomials of the scaled Laplacian L~ (so each filter is K-hop localized).
    Signals are laid out (nodes, batch, features) so that L~ applies without copies."""

    def __init__(self, in_features: int, out_features: int, k: int) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"Chebyshev order K must be >= 1, got {k}")
        self.k = k
        self.weight = nn.Parameter(torch.empty(k, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.normal_(self.weight, 0.0, math.sqrt(1.0 / (k * in_features)))

    def forward(self, x: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        """``x`` (nodes, batch, in_features) -> (nodes, batch, out_features)."""
        nodes, batch, features = x.shape
        t0 = x.reshape(nodes, batch * features)
        terms = [t0]
        if self.k > 1:
            terms.append(laplacian_mm(laplacian, t0))
        for _ in range(2, self.k):
            terms.append(2 * laplacian_mm(laplacian, terms[-1]) - terms[-2])
        stacked = torch.stack(terms, dim=-1).reshape(nodes, batch, features, self.k)
        weight = self.weight.permute(1, 0, 2).reshape(features * self.k, -1)
        return stacked.reshape(nodes, batch, features * self.k) @ weight + self.bias


class GraphConvStack(nn.Module):
    """Chebyshev layers with ReLU on a fixed graph; input one signal value per node."""

    def __init__(self, laplacian: sparse.spmatrix, filters: tuple[int, ...], k: int) -> None:
        super().__init__()
        self.register_buffer("laplacian", sparse_tensor(laplacian), persistent=False)
        sizes = (1, *filters)
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        self.layers = nn.ModuleList(ChebConv(a, b, k) for a, b in pairs)
        self.n_nodes = laplacian.shape[0]
        self.out_features = sizes[-1]

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """(batch, nodes) -> (batch, nodes * last filters), flattened for a dense layer."""
        h = signal.T.unsqueeze(-1)
        for layer in self.layers:
            h = torch.relu(layer(h, self.laplacian))
        return h.permute(1, 0, 2).reshape(h.shape[1], -1)
