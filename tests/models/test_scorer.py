from __future__ import annotations

import pytest
import torch

from fglab.models.scorer import DualPathScorer


def _scorer(kind: str) -> DualPathScorer:
    scorer = DualPathScorer(64, dropout=0.4, dropout_kind=kind)
    with torch.no_grad():
        scorer.weight.uniform_(0.5, 1.5)
        scorer.bias.fill_(0.2)
    return scorer


def test_gaussian_score_dropout_has_the_moments_of_the_bernoulli_mask():
    """Per pair, the Gaussian draw has the mean and variance of the score under a Bernoulli
    mask on every dimension of t ⊙ v (checked over many draws)."""
    torch.manual_seed(0)
    t, v = torch.randn(3, 64) / 8, torch.randn(4, 64) / 8
    scorer = _scorer("gaussian").train()
    draws = {}
    for kind in ("gaussian", "bernoulli"):
        scorer.dropout_kind = kind
        draws[kind] = torch.stack([scorer.all_pairs(t, v).detach() for _ in range(2000)])
    exact_mean = scorer.eval().all_pairs(t, v).detach()
    for kind, samples in draws.items():
        assert torch.allclose(samples.mean(0), exact_mean, atol=0.01), kind
    ratio = draws["gaussian"].var(0) / draws["bernoulli"].var(0)
    assert ratio.min() > 0.85 and ratio.max() < 1.15


@pytest.mark.parametrize("kind", ["gaussian", "bernoulli"])
def test_scores_are_deterministic_and_equal_outside_training(kind):
    t, v = torch.randn(5, 64), torch.randn(6, 64)
    scorer = _scorer(kind).eval()
    assert torch.equal(scorer.all_pairs(t, v), scorer.all_pairs(t, v))
    assert torch.allclose(scorer.all_pairs(t, v), scorer.fold(t) @ v.T + scorer.bias)


def test_gaussian_dropout_has_finite_gradients_where_the_variance_is_zero():
    scorer = _scorer("gaussian").train()
    t = torch.zeros(2, 64, requires_grad=True)  # t ⊙ v = 0: zero variance
    scorer.all_pairs(t, torch.randn(3, 64)).sum().backward()
    assert torch.isfinite(t.grad).all() and torch.isfinite(scorer.weight.grad).all()


def test_unknown_dropout_kind_is_refused():
    with pytest.raises(ValueError, match="score dropout"):
        DualPathScorer(8, 0.4, "uniform")
