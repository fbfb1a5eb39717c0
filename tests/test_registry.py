"""Methods by name, each with a typed config that is used or refused, never ignored."""

from __future__ import annotations

import numpy as np
import pytest

from fglab.features.featureset import FeatureSet
from fglab.method import fit_method
from fglab.registry import get_method, method_names


def _features(n: int = 60, seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n // 3)
    centers = rng.normal(size=(3, 8))
    images = centers[labels] + 0.5 * rng.normal(size=(n, 8))
    texts = centers[labels] + 0.5 * rng.normal(size=(n, 8))
    return FeatureSet(images, texts, labels)


def test_a_baseline_uses_its_config():
    method = fit_method(get_method("sm").build(seed=0, config={"c": 3.0}), _features(), 0)
    assert method.image_c_ == 3.0 and method.text_c_ == 3.0
    chosen = fit_method(get_method("sm").build(seed=0), _features(), 0)
    assert chosen.c is None and chosen.image_c_ > 0  # left out: chosen on validation
    cca = get_method("cca").build(seed=0, config={"n_components": 2}).fit(_features())
    assert cca.model_.n_components == 2


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("sm", {"C": 10}, "sm has no config option 'C' (its options: c)"),
        ("random", {"seed": 1}, "random has no config option 'seed' (its options: none)"),
        ("pls", {"n_components": 0}, "n_components must be >= 1"),
        ("sm-svm", {"c": -1}, "c must be > 0"),
    ],
)
def test_a_config_the_method_cannot_use_is_one_line(name, config, message):
    with pytest.raises(ValueError) as error:
        get_method(name).build(seed=0, config=config)
    assert message in str(error.value)


def test_every_method_builds_with_an_empty_config():
    for name in method_names():
        assert get_method(name).build(seed=0, config={}) is not None
