"""The evaluation protocol: queries are test items of one modality, the gallery is the test
items of the other, relevance is the shared category."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fglab.features.featureset import FeatureSet
from fglab.method import RetrievalMethod
from fglab.metrics import (
    RECALL_AT,
    mean_average_precision,
    partner_ranks,
    precision_recall_curve,
)

DIRECTIONS = ("img2txt", "txt2img")


@dataclass
class DirectionalScores:
    """MAP@all, MAP@100 and the PR curve of each direction (relevance: the shared category),
    and the exact pair's Recall@1/5/10 and median rank (relevance: the item's own partner)."""

    map_all: dict[str, float]
    map_100: dict[str, float]
    pr_curves: dict[str, list[float]]
    recall: dict[str, dict[str, float]]  # direction -> {"1": r, "5": r, "10": r}
    median_rank: dict[str, float]


def exact_pair_scores(similarity: np.ndarray) -> tuple[dict, dict[str, float]]:
    """(recall, median rank) of both directions for (n_images, n_texts) scores over n pairs
    (image i goes with text i)."""
    recall, median = {}, {}
    for direction, scores in (("img2txt", similarity), ("txt2img", similarity.T)):
        ranks = partner_ranks(scores)
        recall[direction] = {str(k): float(np.mean(ranks <= k)) for k in RECALL_AT}
        median[direction] = float(np.median(ranks))
    return recall, median


def evaluate_similarity(similarity: np.ndarray, labels: np.ndarray) -> DirectionalScores:
    """``similarity`` is (n_images, n_texts) over the same n test pairs."""
    by_direction = {"img2txt": similarity, "txt2img": similarity.T}
    map_all, map_100, curves = {}, {}, {}
    for direction, scores in by_direction.items():
        map_all[direction] = mean_average_precision(scores, labels, labels)
        map_100[direction] = mean_average_precision(scores, labels, labels, k=100)
        curves[direction] = precision_recall_curve(scores, labels, labels)[1].tolist()
    for table in (map_all, map_100):
        table["avg"] = (table["img2txt"] + table["txt2img"]) / 2
    return DirectionalScores(map_all, map_100, curves, *exact_pair_scores(similarity))


def evaluate_method(method: RetrievalMethod, test: FeatureSet) -> DirectionalScores:
    return evaluate_similarity(method.similarity(test.images, test.texts), test.labels)
