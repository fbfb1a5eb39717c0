"""The evaluation protocol: queries are test items of one modality, the gallery is the test
items of the other, relevance is the shared category."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fglab.features.featureset import FeatureSet
from fglab.method import RetrievalMethod
from fglab.metrics import (
    RECALL_AT,
    RECALL_LEVELS,
    average_precisions_of_ranked,
    interpolated_precisions_of_ranked,
    partner_ranks,
    relevance_matrix,
)

DIRECTIONS = ("img2txt", "txt2img")
#: Queries scored at a time where the test split is larger: the metrics' work arrays are
#: then (block, n) instead of (n, n) (a 20,000-pair split would need over 10 GB at once).
EVALUATION_BLOCK = 1024


@dataclass
class DirectionalScores:
    """MAP@all, MAP@100 and the PR curve of each direction (relevance: the shared category),
    and the exact pair's Recall@1/5/10 and median rank (relevance: the item's own partner)."""

    map_all: dict[str, float]
    map_100: dict[str, float]
    pr_curves: dict[str, list[float]]
    recall: dict[str, dict[str, float]]  # direction -> {"1": r, "5": r, "10": r}
    median_rank: dict[str, float]


def evaluate_similarity(similarity: np.ndarray, labels: np.ndarray) -> DirectionalScores:
    """``similarity`` is (n_images, n_texts) over the same n test pairs."""
    return evaluate_blocked(
        {"img2txt": lambda rows: similarity[rows],
         "txt2img": lambda rows: similarity[:, rows].T},
        labels,
    )


def evaluate_embeddings(
    images: np.ndarray, texts: np.ndarray, labels: np.ndarray
) -> DirectionalScores:
    """:func:`evaluate_similarity` of ``images @ texts.T`` (row i of each: test pair i),
    scored a block of queries at a time: memory O(block x n), never (n, n)."""
    return evaluate_blocked(
        {"img2txt": lambda rows: images[rows] @ texts.T,
         "txt2img": lambda rows: texts[rows] @ images.T},
        labels,
    )


def evaluate_blocked(
    scores_of: dict[str, Callable[[np.ndarray], np.ndarray]], labels: np.ndarray,
    block: int | None = None,
) -> DirectionalScores:
    """The metrics of :func:`evaluate_similarity`, with ``scores_of[direction](rows)`` giving
    the (len(rows), n) scores of those queries: every metric is a mean over queries of what
    each query's row alone decides, so the blocks' parts make the whole (``block``: queries
    at a time, default EVALUATION_BLOCK)."""
    labels = np.asarray(labels)
    n, block = len(labels), block or EVALUATION_BLOCK
    map_all, map_100, curves, recall, median = {}, {}, {}, {}, {}
    for direction, scores_for in scores_of.items():
        ap, ap_100, curve_rows, ranks = [], [], [], []
        for start in range(0, n, block):
            rows = np.arange(start, min(start + block, n))
            scores = np.asarray(scores_for(rows))
            relevant = relevance_matrix(scores, labels[rows], labels)  # ranked once for all three
            ap.append(average_precisions_of_ranked(relevant))
            ap_100.append(average_precisions_of_ranked(relevant, k=100))
            curve_rows.append(interpolated_precisions_of_ranked(relevant))
            ranks.append(partner_ranks(scores, first=start))
        map_all[direction] = float(np.mean(np.concatenate(ap)))
        map_100[direction] = float(np.mean(np.concatenate(ap_100)))
        stacked = np.concatenate(curve_rows)
        curves[direction] = (stacked.mean(axis=0) if len(stacked) else
                             np.zeros_like(RECALL_LEVELS)).tolist()
        all_ranks = np.concatenate(ranks)
        recall[direction] = {str(k): float(np.mean(all_ranks <= k)) for k in RECALL_AT}
        median[direction] = float(np.median(all_ranks))
    for table in (map_all, map_100):
        table["avg"] = (table["img2txt"] + table["txt2img"]) / 2
    return DirectionalScores(map_all, map_100, curves, recall, median)


def evaluate_method(method: RetrievalMethod, test: FeatureSet) -> DirectionalScores:
    return evaluate_similarity(method.similarity(test.images, test.texts), test.labels)
