"""Methods by name, each with a typed config that is used or refused, never ignored."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

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


@pytest.mark.parametrize("name", method_names())
def test_the_one_parser_refuses_an_unknown_key_for_every_method_family(name):
    family = "fglab" if name.startswith("fglab") else name  # fglab-* share fglab's config
    with pytest.raises(ValueError) as error:
        get_method(name).build(seed=0, config={"nope": 1})
    message = str(error.value)
    assert message.startswith(f"{family} has no config option 'nope' (its options: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        ("cca", {"n_components": "two"}, "cca: n_components must be an integer or null, got 'two'"),
        ("sm", {"c": [1.0]}, "sm: c must be a number or null, got [1.0]"),
        ("fglab", {"training": {"epochs": "3"}},
         "fglab config section 'training': epochs must be an integer, got '3'"),
        ("dscmr", {"alphas": 0.1}, "dscmr: alphas must be a list, got 0.1"),
        ("dscmr", {"training": {"epoch": 3}},
         "dscmr config section 'training' has no config option 'epoch'"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_naming_key_and_method(name, config, message):
    with pytest.raises(ValueError) as error:
        get_method(name).build(seed=0, config=config)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_every_spec_names_the_class_it_builds():
    for name in method_names():
        spec = get_method(name)
        assert type(spec.build(seed=0)) is spec.method_class


def test_method_views_reads_the_class_without_building_a_method(monkeypatch):
    from fglab import experiments

    def refuse(**_: object):
        raise AssertionError("method_views built a method")

    monkeypatch.setattr(
        experiments, "get_method", lambda name: replace(get_method(name), build=refuse)
    )
    with pytest.raises(ValueError, match="fglab reads words"):
        experiments.method_views(None, "fglab", "image:sift", "text:lda")
    assert experiments.method_views(None, "cca", "image:sift", "text:lda") == (
        "image:sift", "text:lda"
    )
    assert experiments.method_views(None, "dscmr", "image:sift")[0] == "image:sift"


def test_listing_method_names_does_not_import_torch():
    script = (
        "import sys, fglab.registry as r; names = r.method_names(); "
        "assert 'torch' not in sys.modules and 'fglab' in names"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
