"""Chebyshev graph convolution (Defferrard et al., NeurIPS 2016) with a torch.sparse operator."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy import sparse
from torch import nn


def sparse_tensor(matrix: sparse.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a float32 torch CSR tensor: its product with a dense matrix
    runs on MKL's sparse kernels, 2-4x faster than a COO tensor's here."""
    csr = sparse.csr_matrix(matrix)
    csr.sum_duplicates()
    csr.sort_indices()
    with warnings.catch_warnings():  # torch calls its CSR support "beta"; mm is all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data.astype(np.float32)),
            csr.shape,
            check_invariants=True,
        )


class _SymmetricSparseMM(torch.autograd.Function):
    """y = L x for a constant symmetric sparse L. Written by hand because torch's generic
    backward of ``torch.sparse.mm`` is several times slower than the forward here; for a
    symmetric L the gradient is just L g."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)  # no bf16 sparse mm
    def forward(ctx, laplacian: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.laplacian = laplacian
        return laplacian @ x

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad: torch.Tensor):
        return None, ctx.laplacian @ grad.contiguous()


def laplacian_mm(laplacian: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return _SymmetricSparseMM.apply(laplacian, x)


class ChebConv(nn.Module):
    """y[o, v, b] = sum_k sum_f theta[k, f, o] * (T_k(L~) x)[f, v, b] + bias[o], where T_k are
    Chebyshev polynomials of the scaled Laplacian L~ (so each filter is K-hop localized).

    Signals are laid out (features, nodes, batch): the mixing of a few features is then one
    (out, in) x (in, nodes * batch) product, which runs several times faster on CPUs than the
    same product with the features last; with one feature, nodes-first for L~ is a view."""

    def __init__(self, in_features: int, out_features: int, k: int) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"Chebyshev order K must be >= 1, got {k}")
        self.k = k
        self.weight = nn.Parameter(torch.empty(k, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.normal_(self.weight, 0.0, math.sqrt(1.0 / (k * in_features)))

    def forward(self, x: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        """``x`` (in_features, nodes, batch) -> (out_features, nodes, batch)."""
        if self.weight.shape[2] < self.weight.shape[1]:
            return self._project_then_filter(x, laplacian) + self.bias[:, None, None]
        return self._filter_then_project(x, laplacian)

    def _filter_then_project(self, x: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        """T_k(L~) x by the three-term recurrence on the input width, then theta (and the
        bias, in the same product)."""
        features, nodes, batch = x.shape
        t0 = x.transpose(0, 1).reshape(nodes, features * batch)  # L~ acts on nodes
        terms = [t0]
        if self.k > 1:
            terms.append(laplacian_mm(laplacian, t0))
        for _ in range(2, self.k):
            terms.append(2 * laplacian_mm(laplacian, terms[-1]) - terms[-2])
        # (k, nodes, features, batch) -> rows k * features + f, columns nodes * batch
        stacked = torch.stack(terms).reshape(self.k, nodes, features, batch).transpose(1, 2)
        stacked = stacked.reshape(self.k * features, nodes * batch)
        weight = self.weight.reshape(self.k * features, -1).T
        return torch.addmm(self.bias[:, None], weight, stacked).reshape(-1, nodes, batch)

    def _project_then_filter(self, x: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
        """The same sum for a layer that narrows: y_k = x theta_k first (L~ commutes with
        theta), then sum_k T_k(L~) y_k by Clenshaw's recurrence b_k = y_k + 2 L~ b_(k+1) -
        b_(k+2), sum = y_0 + L~ b_1 - b_2, so the K - 1 sparse products run on the output
        width instead of the input width."""
        features, nodes, batch = x.shape
        out = self.weight.shape[2]
        weight = self.weight.transpose(1, 2).reshape(self.k * out, features)
        projected = (weight @ x.reshape(features, nodes * batch)).reshape(self.k, out, nodes, batch)
        # each y_k nodes-first for L~: (nodes, out * batch)
        y = [projected[k].transpose(0, 1).reshape(nodes, out * batch) for k in range(self.k)]
        if self.k == 1:
            return y[0].reshape(nodes, out, batch).transpose(0, 1)
        # b_K = b_(K+1) = 0, so start at b_(K-1) = y_(K-1) (no sparse product of zeros)
        current, later = y[self.k - 1], 0  # b_(k+1), b_(k+2)
        for k in range(self.k - 2, 0, -1):
            current, later = y[k] + 2 * laplacian_mm(laplacian, current) - later, current
        total = y[0] + laplacian_mm(laplacian, current) - later
        return total.reshape(nodes, out, batch).transpose(0, 1)


#: Node signals (nodes x documents) per graph convolution pass: 64 documents on a 5,000-word
#: graph. Encoding 512 eng-wiki texts took 0.59x the time of one pass; a training step's 128,
#: level (benchmarks/step_kernels.py).
CHUNK_SIGNALS = 320_000


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

    @torch.autocast("cpu", enabled=False)  # bfloat16 elementwise work on (nodes, batch,
    def forward(self, signal: torch.Tensor) -> torch.Tensor:  # filters) is slow on CPUs
        """(batch, nodes) -> (batch, nodes * last filters), flattened for a dense layer.
        Documents are convolved in chunks whose (filters, nodes, documents) signals stay in
        the CPU caches: every document's convolution is independent of the others."""
        chunk = max(1, CHUNK_SIGNALS // self.n_nodes)
        if len(signal) <= chunk:
            return self._convolve(signal)
        return torch.cat([self._convolve(part) for part in signal.split(chunk)])

    def _convolve(self, signal: torch.Tensor) -> torch.Tensor:
        h = signal.float().T.unsqueeze(0)  # (1, nodes, batch)
        for layer in self.layers:
            h = torch.relu(layer(h, self.laplacian))
        # (filters, nodes, batch) -> (batch, nodes * filters), node-major as the readout reads
        return h.permute(2, 1, 0).reshape(h.shape[2], -1)
