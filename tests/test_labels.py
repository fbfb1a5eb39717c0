from __future__ import annotations

import numpy as np
import pytest

from fglab.config import LabelConfig
from fglab.labels import bin_labels, pair_weights, scale_similarities, similarity_labels


def test_scaling_maps_to_unit_interval_and_keeps_order():
    s = np.array([[3.0, -1.0], [0.5, 2.0]])
    h = scale_similarities(s)
    assert h.min() == 0.0 and h.max() == 1.0
    assert np.array_equal(np.argsort(h.ravel()), np.argsort(s.ravel()))


def test_binned_labels_are_nine_levels_from_point_one_to_point_nine():
    h = np.linspace(0, 1, 101)
    labels = bin_labels(h, 9)
    assert np.all(np.diff(labels) >= 0)
    assert np.allclose(np.unique(labels), np.arange(1, 10) / 10)


@pytest.mark.parametrize("mode", ["continuous", "binned"])
def test_labels_and_weights_are_monotone_in_similarity(mode):
    h = np.linspace(0, 1, 57)
    config = LabelConfig(mode=mode, strength=2.0)
    assert np.all(np.diff(similarity_labels(h, config)) >= 0)
    pos_w = pair_weights(h, np.ones_like(h, dtype=bool), config)
    neg_w = pair_weights(h, np.zeros_like(h, dtype=bool), config)
    # more similar texts: an easier positive (less weight), a harder negative (more weight)
    assert np.all(np.diff(pos_w) <= 0) and pos_w[0] > pos_w[-1]
    assert np.all(np.diff(neg_w) >= 0) and neg_w[-1] > neg_w[0]
    assert pos_w.min() >= 1.0 and neg_w.min() >= 1.0


def test_uniform_labels_weigh_every_pair_alike():
    h = np.random.default_rng(0).random((4, 4))
    weights = pair_weights(h, h > 0.5, LabelConfig(mode="uniform"))
    assert np.array_equal(weights, np.ones_like(h))


def test_unknown_label_mode_is_rejected():
    with pytest.raises(ValueError, match="label mode"):
        LabelConfig(mode="fuzzy")
