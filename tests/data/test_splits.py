"""Validation splits and bounded samples: what model selection sees stays bounded."""

from __future__ import annotations

import numpy as np

from fglab.data.splits import VALIDATION_BOUND, bounded_sample, validation_split


def test_the_validation_part_is_a_fifth_up_to_the_bound():
    labels = np.repeat(np.arange(10), 100)
    fit, val = validation_split(labels, seed=0)
    assert len(val) == 200 and len(fit) == 800
    many = np.arange(10 * VALIDATION_BOUND)  # pair level: a fifth would be twice the bound
    fit, val = validation_split(many, seed=0)
    assert len(val) == VALIDATION_BOUND and len(fit) == len(many) - VALIDATION_BOUND
    assert not set(fit) & set(val)


def test_a_bounded_sample_keeps_all_rows_up_to_the_bound_and_is_seeded_beyond():
    labels = np.repeat(np.arange(4), [10, 20, 30, 940])
    np.testing.assert_array_equal(bounded_sample(labels, 2000, seed=0), np.arange(1000))
    kept = bounded_sample(labels, 100, seed=0)
    assert len(kept) == 100 and np.all(np.diff(kept) > 0)
    np.testing.assert_array_equal(kept, bounded_sample(labels, 100, seed=0))
    assert not np.array_equal(kept, bounded_sample(labels, 100, seed=1))
    # stratified: every category keeps its share, the smallest included
    _, counts = np.unique(labels[kept], return_counts=True)
    np.testing.assert_array_equal(counts, [1, 2, 3, 94])
    # pair level (each row its own label): a plain seeded sample
    assert len(bounded_sample(np.arange(1000), 10, seed=0)) == 10
