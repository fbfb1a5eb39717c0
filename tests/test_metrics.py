"""Metrics against brute-force per-query references and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fglab.metrics import (
    average_precisions,
    blocked_average_precisions,
    mean_average_precision,
    median_rank,
    partner_ranks,
    precision_at_k,
    precision_recall_curve,
    recall_at_k,
)


def _ranked_relevance(scores_row, query_label, gallery_labels):
    # Brute force: a plain Python sort on (-score, gallery index).
    order = sorted(range(len(scores_row)), key=lambda j: (-scores_row[j], j))
    return [gallery_labels[j] == query_label for j in order]


def _reference_ap(scores_row, query_label, gallery_labels, k=None):
    relevant = _ranked_relevance(scores_row, query_label, gallery_labels)
    if k is not None:
        relevant = relevant[:k]
    hits, total = 0, 0.0
    for rank, rel in enumerate(relevant, start=1):
        if rel:
            hits += 1
            total += hits / rank
    return total / hits if hits else 0.0


def _reference_interpolated_pr(scores_row, query_label, gallery_labels):
    relevant = _ranked_relevance(scores_row, query_label, gallery_labels)
    n_rel = sum(relevant)
    points, hits = [], 0
    for rank, rel in enumerate(relevant, start=1):
        hits += rel
        points.append((hits / n_rel, hits / rank))
    return [max(p for r, p in points if r >= level - 1e-12) for level in np.linspace(0, 1, 11)]


@pytest.fixture
def random_problem():
    rng = np.random.default_rng(7)
    n_query, n_gallery = 23, 41
    scores = rng.normal(size=(n_query, n_gallery)).round(1)  # rounding makes ties
    return scores, rng.integers(0, 4, n_query), rng.integers(0, 4, n_gallery)


@pytest.mark.parametrize("k", [None, 1, 5, 40, 100])
def test_average_precision_matches_brute_force(random_problem, k):
    scores, q, g = random_problem
    expected = [_reference_ap(scores[i], q[i], g, k) for i in range(len(q))]
    np.testing.assert_allclose(average_precisions(scores, q, g, k), expected, atol=1e-12)
    assert mean_average_precision(scores, q, g, k) == pytest.approx(np.mean(expected))


def test_map_all_matches_sklearn_without_ties():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(15, 60))
    q, g = rng.integers(0, 3, 15), rng.integers(0, 3, 60)
    expected = [average_precision_score(g == q[i], scores[i]) for i in range(15)]
    assert mean_average_precision(scores, q, g) == pytest.approx(np.mean(expected))


def test_ties_are_broken_by_gallery_order():
    scores = np.zeros((1, 4))
    # Relevant items at gallery positions 1 and 3 -> ranks 2 and 4: AP = (1/2 + 2/4) / 2.
    assert mean_average_precision(scores, np.array([1]), np.array([0, 1, 0, 1])) == 0.5


def test_map_at_k_divides_by_relevant_within_top_k():
    scores = np.array([[4.0, 3.0, 2.0, 1.0]])
    labels = np.array([0, 1, 0, 0])
    # Top 2 holds one relevant item at rank 1: AP@2 = 1/1; MAP@all = (1 + 2/3 + 3/4) / 3.
    assert mean_average_precision(scores, np.array([0]), labels, k=2) == 1.0
    assert mean_average_precision(scores, np.array([0]), labels) == pytest.approx(
        (1 + 2 / 3 + 3 / 4) / 3
    )
    # No relevant item in the top 1 -> AP 0.
    assert mean_average_precision(scores, np.array([1]), labels, k=1) == 0.0


def test_perfect_and_worst_rankings():
    labels = np.array([0, 0, 1, 1])
    perfect = (labels[:, None] == labels[None, :]).astype(float)
    assert mean_average_precision(perfect, labels, labels) == 1.0
    assert mean_average_precision(-perfect, labels, labels) < 0.6


def test_precision_at_k_matches_brute_force(random_problem):
    scores, q, g = random_problem
    for k in (1, 3, 10):
        expected = np.mean(
            [sum(_ranked_relevance(scores[i], q[i], g)[:k]) / k for i in range(len(q))]
        )
        assert precision_at_k(scores, q, g, k) == pytest.approx(expected)


def test_pr_curve_matches_brute_force(random_problem):
    scores, q, g = random_problem
    keep = [i for i in range(len(q)) if (g == q[i]).any()]
    expected = np.mean([_reference_interpolated_pr(scores[i], q[i], g) for i in keep], axis=0)
    recall, precision = precision_recall_curve(scores, q, g)
    np.testing.assert_allclose(recall, np.linspace(0, 1, 11))
    np.testing.assert_allclose(precision, expected, atol=1e-12)
    assert np.all(np.diff(precision) <= 1e-12)  # interpolated precision never rises


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="k must be"):
        mean_average_precision(np.zeros((2, 2)), np.zeros(2), np.zeros(2), k=0)
    with pytest.raises(ValueError, match="scores must be"):
        mean_average_precision(np.zeros((2, 3)), np.zeros(2), np.zeros(2))


def _reference_partner_rank(scores_row, partner):
    order = sorted(range(len(scores_row)), key=lambda j: (-scores_row[j], j))
    return order.index(partner) + 1


def test_exact_pair_recall_and_median_rank_match_brute_force():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(30, 30)).round(1)  # rounding makes ties, broken by gallery order
    scores[np.arange(30), np.arange(30)] += rng.uniform(0, 2, 30)
    ranks = [_reference_partner_rank(scores[i], i) for i in range(30)]
    assert partner_ranks(scores).tolist() == ranks
    for k in (1, 5, 10, 30):
        assert recall_at_k(scores, k) == pytest.approx(np.mean([r <= k for r in ranks]))
    assert median_rank(scores) == pytest.approx(np.median(ranks))


def test_exact_pair_extremes_and_bad_shapes():
    assert recall_at_k(np.eye(5), 1) == 1.0 and median_rank(np.eye(5)) == 1.0
    assert median_rank(-np.eye(5)) == 5.0
    with pytest.raises(ValueError, match=r"\(n, n\)"):
        partner_ranks(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="positive"):
        recall_at_k(np.eye(3), 0)


def test_blocked_average_precisions_equal_the_whole_matrix_at_any_block():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(37, 50))
    query_labels, gallery_labels = rng.integers(0, 4, 37), rng.integers(0, 4, 50)
    whole = blocked_average_precisions(lambda rows: scores[rows], query_labels, gallery_labels,
                                       block=37)
    for block in (1, 5, 16):
        np.testing.assert_allclose(
            blocked_average_precisions(lambda rows: scores[rows], query_labels, gallery_labels,
                                       block=block),
            whole,
        )
    # one query's AP by hand: precision at each relevant item's rank, averaged
    order = np.argsort(-scores[0])
    relevant = gallery_labels[order] == query_labels[0]
    by_hand = np.mean(np.cumsum(relevant)[relevant] / (np.flatnonzero(relevant) + 1))
    assert whole[0] == pytest.approx(by_hand)
