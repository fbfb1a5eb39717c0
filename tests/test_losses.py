from __future__ import annotations

import math

import pytest
import torch

from fglab.losses import (
    hardest_negative_loss,
    pairwise_similarity_loss,
    soft_target_contrastive_loss,
    weighted_contrastive_loss,
    weighted_pairwise_similarity_loss,
)


def test_plain_loss_matches_hand_computed_value():
    pos = torch.tensor([0.9, 0.5])  # mean 0.7, population variance 0.04
    neg = torch.tensor([0.1, 0.3, 0.2])  # mean 0.2, variance 0.02/3
    # 0.04 + 0.00666.. + 0.35 * max(0, 0.8 - 0.5) = 0.04 + 0.0066667 + 0.105
    expected = 0.04 + 0.02 / 3 + 0.35 * 0.3
    assert float(pairwise_similarity_loss(pos, neg)) == pytest.approx(expected, abs=1e-6)


def test_margin_term_vanishes_when_means_are_far_apart():
    pos, neg = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])
    assert float(pairwise_similarity_loss(pos, neg)) == pytest.approx(0.0)


@pytest.mark.parametrize("value", [1.0, 0.5, 3.0])
def test_weighted_loss_with_equal_labels_is_the_plain_loss(value):
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 6, generator=gen)
    positive = torch.eye(6, dtype=torch.bool) | (torch.rand(6, 6, generator=gen) > 0.7)
    plain = pairwise_similarity_loss(scores[positive], scores[~positive])
    weighted = weighted_pairwise_similarity_loss(
        scores, positive, torch.full_like(scores, value)
    )
    assert float(weighted) == pytest.approx(float(plain), abs=1e-6)
    assert float(weighted_pairwise_similarity_loss(scores, positive)) == pytest.approx(
        float(plain), abs=1e-6
    )


def test_integer_weight_counts_a_pair_as_copies_of_itself():
    scores = torch.tensor([0.9, 0.5, 0.1, 0.3])
    positive = torch.tensor([True, True, False, False])
    weights = torch.tensor([2.0, 1.0, 1.0, 1.0])
    copied = pairwise_similarity_loss(torch.tensor([0.9, 0.9, 0.5]), torch.tensor([0.1, 0.3]))
    assert float(weighted_pairwise_similarity_loss(scores, positive, weights)) == pytest.approx(
        float(copied), abs=1e-6
    )


def test_loss_needs_both_positives_and_negatives():
    with pytest.raises(ValueError, match="positives and negatives"):
        weighted_pairwise_similarity_loss(torch.ones(3), torch.ones(3, dtype=torch.bool))


def _contrastive_reference(scores, positive, weights, temperature):
    """The weighted InfoNCE written out pair by pair, both directions."""
    n = len(scores)
    total = []
    for matrix, pos, w in ((scores, positive, weights), (scores.T, positive.T, weights.T)):
        rows = []
        for i in range(n):
            if not pos[i].any():
                continue
            denominator = sum(float(w[i, j]) * math.exp(float(matrix[i, j]) / temperature)
                              for j in range(n))
            terms = [
                math.log(float(w[i, j]) * math.exp(float(matrix[i, j]) / temperature)
                         / denominator)
                for j in range(n) if pos[i, j]
            ]
            rows.append(-sum(terms) / len(terms))
        total.append(sum(rows) / len(rows))
    return sum(total) / 2


@pytest.mark.parametrize("same_category", [False, True])
def test_contrastive_loss_matches_a_pair_by_pair_reference(same_category):
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(5, 5, generator=gen)
    positive = torch.eye(5, dtype=torch.bool)
    if same_category:  # pairs 0 and 1 share a category: two positives in their rows
        positive[0, 1] = positive[1, 0] = True
    weights = 1 + torch.rand(5, 5, generator=gen)
    loss = weighted_contrastive_loss(scores, positive, weights, temperature=0.5)
    expected = _contrastive_reference(scores, positive, weights, 0.5)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    plain = weighted_contrastive_loss(scores, positive, None, temperature=0.5)
    ones = _contrastive_reference(scores, positive, torch.ones(5, 5), 0.5)
    assert float(plain) == pytest.approx(ones, rel=1e-5)


def test_a_heavier_negative_raises_the_contrastive_loss():
    scores = torch.tensor([[1.0, 0.8, 0.0], [0.2, 1.0, 0.1], [0.0, 0.3, 1.0]])
    positive = torch.eye(3, dtype=torch.bool)
    weights = torch.ones(3, 3)
    heavier = weights.clone()
    heavier[0, 1] = 3.0  # the near duplicate of pair 0 graded hard
    assert float(weighted_contrastive_loss(scores, positive, heavier)) > float(
        weighted_contrastive_loss(scores, positive, weights)
    )


def test_hardest_negative_loss_takes_the_hardest_negative_of_each_row_and_column():
    scores = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.5, 0.6], [0.0, 0.3, 0.7]])
    positive = torch.eye(3, dtype=torch.bool)
    # rows: hardest negatives 0.8, 0.6, 0.3; columns: 0.2, 0.8, 0.6
    by_row = [max(0, 0.2 + 0.8 - 0.9), max(0, 0.2 + 0.6 - 0.5), max(0, 0.2 + 0.3 - 0.7)]
    by_col = [max(0, 0.2 + 0.2 - 0.9), max(0, 0.2 + 0.8 - 0.5), max(0, 0.2 + 0.6 - 0.7)]
    expected = (sum(by_row) + sum(by_col)) / 3 / 2
    assert hardest_negative_loss(scores, positive, margin=0.2).item() == pytest.approx(expected)


def test_a_weighted_negative_can_become_the_hardest():
    scores = torch.tensor([[0.9, 0.5, 0.4], [0.1, 0.9, 0.2], [0.1, 0.2, 0.9]])
    positive = torch.eye(3, dtype=torch.bool)
    weights = torch.ones(3, 3)
    plain = hardest_negative_loss(scores, positive, weights, margin=0.5)
    weights[0, 2] = 2.0  # graded hard: 0.4 counts as 0.8, above 0.5
    assert hardest_negative_loss(scores, positive, weights, margin=0.5) > plain


def test_soft_targets_without_mix_are_plain_infonce():
    torch.manual_seed(0)
    scores = torch.randn(5, 5)
    positive = torch.eye(5, dtype=torch.bool)
    similarity = torch.rand(5, 5)
    plain = weighted_contrastive_loss(scores, positive, None, 0.1)
    soft = soft_target_contrastive_loss(scores, positive, similarity, 0.1, 0.1, mix=0.0)
    assert soft.item() == pytest.approx(plain.item(), rel=1e-5)


def test_soft_targets_give_a_near_duplicate_caption_partial_credit():
    # texts 0 and 1 are near-duplicates: plain InfoNCE prefers them pushed apart, soft
    # targets prefer them close
    close = torch.tensor([[2.0, 1.9, -1.0], [1.9, 2.0, -1.0], [-1.0, -1.0, 2.0]])
    apart = torch.tensor([[2.0, -1.0, -1.0], [-1.0, 2.0, -1.0], [-1.0, -1.0, 2.0]])
    positive = torch.eye(3, dtype=torch.bool)
    similarity = torch.tensor([[1.0, 0.95, 0.0], [0.95, 1.0, 0.0], [0.0, 0.0, 1.0]])

    def loss(scores, mix):
        return soft_target_contrastive_loss(scores, positive, similarity, 0.1, 0.1, mix=mix)

    assert loss(apart, 0.0) < loss(close, 0.0)
    assert loss(close, 0.5) < loss(apart, 0.5)
