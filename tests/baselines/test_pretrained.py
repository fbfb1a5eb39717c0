"""Zero-shot search ranks by the cosine of the two towers' embeddings, saved without pickle."""

from __future__ import annotations

import numpy as np
import pytest

from fglab.baselines import ZeroShotRetrieval
from fglab.features.featureset import FeatureSet


def _features(n: int = 6, dim: int = 4, text_dim: int = 4) -> FeatureSet:
    rng = np.random.default_rng(0)
    return FeatureSet(rng.normal(size=(n, dim)), rng.normal(size=(n, text_dim)), np.arange(n))


def test_scores_are_the_cosines_of_the_features(tmp_path):
    features = _features()
    method = ZeroShotRetrieval().fit(features)
    images, texts = features.images, features.texts
    expected = (images / np.linalg.norm(images, axis=1, keepdims=True)) @ (
        texts / np.linalg.norm(texts, axis=1, keepdims=True)).T
    np.testing.assert_allclose(method.similarity(images, texts), expected, atol=1e-5)
    method.save(tmp_path / "m")
    loaded = ZeroShotRetrieval.load(tmp_path / "m")
    assert loaded.dim_ == 4 and not list(tmp_path.rglob("*.pkl"))
    np.testing.assert_allclose(loaded.encode_texts(texts), method.encode_texts(texts))


def test_towers_of_different_widths_are_refused():
    with pytest.raises(ValueError, match="image:clip and text:clip"):
        ZeroShotRetrieval().fit(_features(text_dim=5))


def test_its_views_are_fixed():
    assert ZeroShotRetrieval.fixed_views == ("image:clip", "text:clip")
