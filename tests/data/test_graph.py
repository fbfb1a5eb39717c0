from __future__ import annotations

import numpy as np

from fglab.data.graph import knn_graph, scaled_laplacian


def _tiny_vectors() -> np.ndarray:
    # two tight clusters: {cat, dog, pet} and {car, bus}, plus "idea" far from both
    return np.array(
        [[1.0, 0.1, 0.0], [1.0, 0.2, 0.0], [0.9, 0.0, 0.1],
         [0.0, 1.0, 0.1], [0.1, 1.0, 0.0], [0.0, 0.0, 1.0]]
    )


def test_knn_graph_is_symmetric_without_self_loops():
    adjacency = knn_graph(_tiny_vectors(), k=2).toarray()
    assert np.allclose(adjacency, adjacency.T)
    assert np.all(np.diag(adjacency) == 0)
    assert np.all((adjacency > 0).sum(axis=1) >= 2)  # every word keeps its own k neighbours


def test_knn_graph_links_nearest_words_by_cosine():
    adjacency = knn_graph(_tiny_vectors(), k=1).toarray()
    edges = {tuple(sorted(e)) for e in zip(*np.nonzero(adjacency), strict=True)}
    assert (0, 1) in edges and (3, 4) in edges
    assert (0, 3) not in edges and (1, 4) not in edges
    # symmetric union: "idea" (5) picks its nearest, and that edge exists both ways
    assert adjacency[5].sum() > 0 and np.allclose(adjacency[:, 5], adjacency[5])


def test_scaled_laplacian_spectrum_lies_in_minus_one_one():
    laplacian = scaled_laplacian(knn_graph(_tiny_vectors(), k=2)).toarray()
    eigenvalues = np.linalg.eigvalsh(laplacian)
    assert eigenvalues.min() >= -1 - 1e-6 and eigenvalues.max() <= 1 + 1e-6
    assert np.isclose(eigenvalues.max(), 1.0, atol=1e-4)
