"""Word vectors for Chinese, learned from the training texts themselves (no pretrained Chinese
vectors ship offline): skip-gram Word2Vec (gensim, seeded, one worker so runs repeat exactly)
or positive PMI of window co-occurrences reduced by a truncated SVD (Levy et al., 2015).

``benchmarks/chinese_word_vectors.py`` compares the two on chinese-news (text->text retrieval
on a validation part of train, and category purity of the word kNN graph); the default
method is the one that measured better there.
"""

from __future__ import annotations

import logging
import zlib

import numpy as np
from scipy import sparse
from sklearn.utils.extmath import randomized_svd

logger = logging.getLogger(__name__)

DIM = 50  # as the English GloVe vectors, so both languages give the graph the same width
WINDOW = 5
METHODS = ("word2vec", "ppmi-svd")
DEFAULT_METHOD = "ppmi-svd"


def train_chinese_word_vectors(
    tokens: list[list[str]],
    vocabulary: list[str],
    seed: int,
    method: str = DEFAULT_METHOD,
    dim: int = DIM,
) -> np.ndarray:
    """(len(vocabulary), dim) float32 vectors learned from ``tokens`` (each text's words);
    words that never occur get zero rows."""
    if method == "word2vec":
        vectors = _word2vec(tokens, vocabulary, seed, dim)
    elif method == "ppmi-svd":
        vectors = _ppmi_svd(tokens, vocabulary, seed, dim)
    else:
        raise ValueError(f"word vector method must be one of {', '.join(METHODS)}, got {method!r}")
    missing = int((~vectors.any(axis=1)).sum())
    if missing:
        logger.info("%s: %d of %d vocabulary words never occur; zero vectors",
                    method, missing, len(vocabulary))
    return vectors


def _stable_hash(text: str) -> int:
    """gensim seeds each word's initial vector with ``hashfxn(word + seed)``; Python's own
    ``hash`` of a string changes between processes, so runs would differ."""
    return zlib.crc32(text.encode("utf-8"))


def _word2vec(tokens: list[list[str]], vocabulary: list[str], seed: int, dim: int) -> np.ndarray:
    from gensim.models import Word2Vec

    sentences = [t for t in tokens if t]
    model = Word2Vec(
        sentences, vector_size=dim, window=WINDOW, min_count=1, sg=1, negative=10,
        epochs=20, seed=seed, workers=1, hashfxn=_stable_hash,
    )
    out = np.zeros((len(vocabulary), dim), dtype=np.float32)
    for row, word in enumerate(vocabulary):
        if word in model.wv.key_to_index:
            out[row] = model.wv[word]
    return out


def cooccurrence_counts(tokens: list[list[str]], vocabulary: list[str],
                        window: int = WINDOW) -> sparse.csr_matrix:
    """Symmetric counts of vocabulary words within ``window`` positions of each other."""
    index = {word: i for i, word in enumerate(vocabulary)}
    rows, cols = [], []
    for text in tokens:
        ids = np.array([index[w] for w in text if w in index], dtype=np.int64)
        for offset in range(1, window + 1):
            if len(ids) > offset:
                rows += [ids[:-offset], ids[offset:]]
                cols += [ids[offset:], ids[:-offset]]
    n = len(vocabulary)
    if not rows:
        return sparse.csr_matrix((n, n), dtype=np.float64)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))


def ppmi(counts: sparse.csr_matrix, alpha: float = 0.75) -> sparse.csr_matrix:
    """Positive pointwise mutual information, contexts smoothed by ``alpha`` (Levy et al.)."""
    counts = sparse.coo_matrix(counts)
    total = counts.sum()
    if total == 0:
        return sparse.csr_matrix(counts.shape)
    word_p = np.asarray(counts.sum(axis=1)).ravel() / total
    context = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    context_p = context / context.sum()
    pmi = np.log(counts.data / total / (word_p[counts.row] * context_p[counts.col]))
    keep = pmi > 0
    return sparse.csr_matrix(
        (pmi[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape
    )


def _ppmi_svd(tokens: list[list[str]], vocabulary: list[str], seed: int, dim: int) -> np.ndarray:
    matrix = ppmi(cooccurrence_counts(tokens, vocabulary))
    k = min(dim, max(min(matrix.shape) - 1, 1))
    u, s, _ = randomized_svd(matrix, n_components=k, random_state=seed)
    vectors = u * np.sqrt(s)  # symmetric weighting of the singular values
    out = np.zeros((len(vocabulary), dim), dtype=np.float32)
    out[:, :k] = vectors
    return out
