"""The zero-shot score beside fglab's: inner products add w times the pretrained cosine."""

from __future__ import annotations

import numpy as np
import pytest

from fglab.config import PRETRAINED_WEIGHTS
from fglab.training.zero_shot import check_towers, weight_scores, with_zero_shot

RNG = np.random.default_rng(0)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_score_becomes_fglabs_plus_w_times_the_cosine():
    images, texts = RNG.normal(size=(4, 3)), RNG.normal(size=(5, 3))
    zero_images, zero_texts = _unit(RNG.normal(size=(4, 2))), _unit(RNG.normal(size=(5, 2)))
    both = with_zero_shot(images, 2.0, lambda: zero_images) @ with_zero_shot(
        texts, 2.0, lambda: zero_texts).T
    np.testing.assert_allclose(both, images @ texts.T + 2.0 * zero_images @ zero_texts.T,
                               rtol=1e-5)
    assert with_zero_shot(images, 0.0, lambda: pytest.fail("computed")) is images


def test_every_weight_is_scored():
    seen = []

    def score(images, texts, labels):
        seen.append(images.shape[1])
        return float(images.shape[1])

    encoded, zero = (np.ones((3, 4)), np.ones((3, 4))), (np.ones((3, 2)), np.ones((3, 2)))
    scores = weight_scores(encoded, zero, np.arange(3), score)
    assert list(scores) == list(PRETRAINED_WEIGHTS) and scores[0.0] == 4 and scores[1.0] == 6


def test_towers_of_two_models_are_refused():
    check_towers(0.0, 512, 384)  # not used: any views
    with pytest.raises(ValueError, match="one model"):
        check_towers(None, 512, 384)
