from __future__ import annotations

import pytest
import torch

from fglab.losses import pairwise_similarity_loss, weighted_pairwise_similarity_loss


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
