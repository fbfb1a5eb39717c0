"""Retrieval metrics over a score matrix (NumPy arrays), relevance = same label.

Every function takes ``scores`` of shape (n_query, n_gallery), higher = more similar, and
ranks each query's gallery by descending score with ties broken by gallery order (a stable
sort), so results never depend on the sort algorithm.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RECALL_LEVELS = np.linspace(0.0, 1.0, 11)


def rank_gallery(scores: np.ndarray) -> np.ndarray:
    """Gallery indices per query, best first; ties keep gallery order. Shape as ``scores``."""
    # torch's stable sort: the order of NumPy's stable argsort, rows sorted in parallel, about
    # twice as fast (benchmarks/step_kernels.py). Imported here: importing the metrics alone
    # should not load torch.
    import torch

    negated = torch.from_numpy(-np.asarray(scores, dtype=np.float64))
    return torch.sort(negated, dim=1, stable=True).indices.numpy()


def relevance_matrix(
    scores: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray
) -> np.ndarray:
    """Boolean (n_query, n_gallery): is the item at rank r relevant to query q."""
    scores = np.asarray(scores)
    query_labels = np.asarray(query_labels)
    gallery_labels = np.asarray(gallery_labels)
    if scores.ndim != 2 or scores.shape != (len(query_labels), len(gallery_labels)):
        raise ValueError(
            f"scores must be (n_query, n_gallery) = ({len(query_labels)}, "
            f"{len(gallery_labels)}), got {scores.shape}"
        )
    order = rank_gallery(scores)
    return gallery_labels[order] == query_labels[:, None]


def average_precisions(
    scores: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    k: int | None = None,
) -> np.ndarray:
    """AP of each query.

    With ranked relevance rel_1..rel_N and P@r = (rel_1 + ... + rel_r) / r,

        AP@k = sum_{r<=k} P@r * rel_r / R_k

    where R_k is the number of relevant items within the top k (k = None: all N, so R is the
    number of relevant gallery items). AP = 0 for a query with R_k = 0.
    """
    return average_precisions_of_ranked(
        relevance_matrix(scores, query_labels, gallery_labels), k
    )


def average_precisions_of_ranked(relevant: np.ndarray, k: int | None = None) -> np.ndarray:
    """:func:`average_precisions` from the ranked relevance (:func:`relevance_matrix`)."""
    if k is not None and k <= 0:
        raise ValueError(f"k must be a positive integer or None, got {k}")
    if k is not None:
        relevant = relevant[:, :k]
    hits = np.cumsum(relevant, axis=1)
    ranks = np.arange(1, relevant.shape[1] + 1)
    precision_sum = np.sum((hits / ranks) * relevant, axis=1)
    n_relevant = hits[:, -1] if relevant.shape[1] else np.zeros(len(relevant))
    return np.divide(
        precision_sum, n_relevant, out=np.zeros(len(relevant)), where=n_relevant > 0
    )


def mean_average_precision(
    scores: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    k: int | None = None,
) -> float:
    """MAP (k = None, MAP@all) or MAP@k: the mean of :func:`average_precisions`."""
    return float(np.mean(average_precisions(scores, query_labels, gallery_labels, k)))


def precision_at_k(
    scores: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray, k: int
) -> float:
    """Mean over queries of (relevant items in the top k) / k; k larger than the gallery
    counts the whole gallery, divided by the gallery size."""
    if k <= 0:
        raise ValueError(f"k must be a positive integer, got {k}")
    relevant = relevance_matrix(scores, query_labels, gallery_labels)[:, :k]
    return float(np.mean(relevant.sum(axis=1) / relevant.shape[1]))


def precision_recall_curve(
    scores: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """11-point interpolated precision-recall curve, averaged over queries.

    For each query and recall level r in {0, 0.1, ..., 1}, the interpolated precision is
    max_{r' >= r} P(r'), the best precision at any rank whose recall reaches r. Queries without
    any relevant item are left out. Returns (recall levels, mean precision), both of length 11.
    """
    curves = interpolated_precisions(scores, query_labels, gallery_labels)
    if len(curves) == 0:
        return RECALL_LEVELS.copy(), np.zeros_like(RECALL_LEVELS)
    return RECALL_LEVELS.copy(), curves.mean(axis=0)


def interpolated_precisions(
    scores: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray
) -> np.ndarray:
    """(queries with a relevant item, 11): each one's interpolated precision at the recall
    levels of :func:`precision_recall_curve` (its mean over the rows)."""
    return interpolated_precisions_of_ranked(
        relevance_matrix(scores, query_labels, gallery_labels)
    )


def interpolated_precisions_of_ranked(relevant: np.ndarray) -> np.ndarray:
    """:func:`interpolated_precisions` from the ranked relevance (:func:`relevance_matrix`)."""
    relevant = relevant[relevant.any(axis=1)]
    if len(relevant) == 0:
        return np.zeros((0, len(RECALL_LEVELS)))
    hits = np.cumsum(relevant, axis=1)
    precision = hits / np.arange(1, relevant.shape[1] + 1)
    recall = hits / hits[:, -1:]
    # Best precision from rank r onwards: a reversed running maximum.
    best_after = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    curve = np.empty((len(relevant), len(RECALL_LEVELS)))
    for j, level in enumerate(RECALL_LEVELS):
        first = np.argmax(recall >= level - 1e-12, axis=1)  # first rank reaching the level
        curve[:, j] = best_after[np.arange(len(relevant)), first]
    return curve


RECALL_AT = (1, 5, 10)


def partner_ranks(scores: np.ndarray, first: int | None = None) -> np.ndarray:
    """1-based rank of each query's exact partner, for ``scores`` (n, n) over n pairs where
    query i's partner is gallery item i: 1 + the number of items ranked before it (higher
    score, or an equal score earlier in the gallery: the stable order of
    :func:`rank_gallery`). ``first`` given: the rows are a block of the queries, first,
    first + 1, ... of the n ((b, n) scores)."""
    scores = np.asarray(scores, dtype=np.float64)
    start = 0 if first is None else first
    square = first is not None or scores.shape[0] == scores.shape[-1]
    if scores.ndim != 2 or not square or start + scores.shape[0] > scores.shape[1]:
        raise ValueError(f"exact-pair ranks need (n, n) scores over n pairs, got {scores.shape}")
    queries = np.arange(start, start + len(scores))
    partner = scores[np.arange(len(scores)), queries][:, None]
    before = np.arange(scores.shape[1])[None, :] < queries[:, None]
    ahead = (scores > partner) | ((scores == partner) & before)
    return 1 + ahead.sum(axis=1)


def recall_at_k(scores: np.ndarray, k: int) -> float:
    """Recall@k of the exact pair (the Flickr30k / MS-COCO protocol): the fraction of queries
    whose partner is in their top k."""
    if k <= 0:
        raise ValueError(f"k must be a positive integer, got {k}")
    return float(np.mean(partner_ranks(scores) <= k))


def median_rank(scores: np.ndarray) -> float:
    """Median over queries of the exact partner's 1-based rank."""
    return float(np.median(partner_ranks(scores)))


def blocked_average_precisions(
    scores_of: Callable[[np.ndarray], np.ndarray],
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    block: int = 1024,
) -> np.ndarray:
    """:func:`average_precisions` of every query, with the scores computed and ranked
    ``block`` query rows at a time (``scores_of(rows)`` gives their (len(rows), n_gallery)
    scores): memory O(block x gallery) instead of O(queries x gallery)."""
    query_labels = np.asarray(query_labels)
    n = len(query_labels)
    parts = [
        average_precisions(scores_of(np.arange(start, min(start + block, n))),
                           query_labels[start : start + block], gallery_labels)
        for start in range(0, n, block)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)
