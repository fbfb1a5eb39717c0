"""The word graph of the text branch: symmetric k nearest neighbours by cosine similarity."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def knn_graph(vectors: np.ndarray, k: int = 8) -> sparse.csr_matrix:
    """(n, n) symmetric adjacency: an edge joins two words when either is among the other's
    ``k`` nearest by cosine similarity; its weight is that similarity clipped at 0 (plus a
    tiny floor so that an edge never vanishes). No self loops."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    if n < 2:
        raise ValueError(f"a word graph needs at least 2 words, got {n}")
    k = min(k, n - 1)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rows, cols, vals = [], [], []
    for start in range(0, n, 2048):  # blocks keep the n x n similarity out of memory
        sims = unit[start : start + 2048] @ unit.T
        block = np.arange(start, min(start + 2048, n))
        sims[block - start, block] = -np.inf
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        rows.append(np.repeat(block, k))
        cols.append(nearest.ravel())
        vals.append(np.take_along_axis(sims, nearest, axis=1).ravel())
    weights = np.maximum(np.concatenate(vals), 0.0) + 1e-6
    adjacency = sparse.csr_matrix(
        (weights, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    return adjacency.maximum(adjacency.T).tocsr()


def scaled_laplacian(adjacency: sparse.spmatrix) -> sparse.csr_matrix:
    """L~ = 2 L / lambda_max - I with L = I - D^-1/2 W D^-1/2, the operator whose Chebyshev
    polynomials the graph convolution uses (Defferrard et al., 2016)."""
    from scipy.sparse.linalg import eigsh

    n = adjacency.shape[0]
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = sparse.diags(1.0 / np.sqrt(np.maximum(degree, 1e-12)))
    laplacian = sparse.identity(n) - inv_sqrt @ adjacency @ inv_sqrt
    try:
        lambda_max = float(eigsh(laplacian, k=1, which="LM", return_eigenvectors=False)[0])
    except Exception:  # ARPACK may not converge on odd graphs; 2 bounds the spectrum
        lambda_max = 2.0
    return (2.0 / lambda_max * laplacian - sparse.identity(n)).tocsr()
