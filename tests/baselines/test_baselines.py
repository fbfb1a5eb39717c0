"""The classic methods on the real eng-wiki features (128-d SIFT, 10-d LDA)."""

from __future__ import annotations

import numpy as np
import pytest

from fglab.baselines import (
    CCARetrieval,
    PLSRetrieval,
    RandomRetrieval,
    SemanticCorrelationMatching,
    SemanticMatching,
)
from fglab.data.splits import validation_split
from fglab.evaluation.protocol import evaluate_method
from fglab.features.views import build_features

# Published MAP@all (img->txt, txt->img) on the same features: CCA and SCM from Rasiwasia et al.
# (2010) as reported by Wang et al. (JFSSL, 2016). We require agreement within 0.04.
PUBLISHED = {"cca": (0.2549, 0.1846), "scm": (0.277, 0.226)}


@pytest.fixture(scope="module")
def features(eng_wiki):
    return build_features(eng_wiki, "image:sift", "text:lda")


def _fit(method, train):
    if method.selects_on_validation:
        fit_rows, val_rows = validation_split(train.labels, seed=0)
        return method.fit(train.subset(fit_rows), train.subset(val_rows))
    return method.fit(train)


@pytest.mark.parametrize(
    ("name", "method"), [("cca", CCARetrieval()), ("scm", SemanticCorrelationMatching())]
)
def test_published_numbers_are_reproduced(features, name, method):
    train, test = features
    scores = evaluate_method(_fit(method, train), test)
    img2txt, txt2img = PUBLISHED[name]
    assert scores.map_all["img2txt"] == pytest.approx(img2txt, abs=0.04)
    assert scores.map_all["txt2img"] == pytest.approx(txt2img, abs=0.04)


@pytest.mark.parametrize("method", [PLSRetrieval(), SemanticMatching()])
def test_other_methods_beat_chance_clearly(features, method):
    train, test = features
    scores = evaluate_method(_fit(method, train), test)
    assert scores.map_all["avg"] > 0.2  # chance is about 0.118


def test_random_ranking_sits_at_chance(features):
    train, test = features
    scores = evaluate_method(RandomRetrieval(seed=1).fit(train), test)
    class_shares = np.bincount(test.labels) / len(test.labels)
    chance = float(np.sum(class_shares**2))  # expected precision of a random ranking
    assert scores.map_all["avg"] == pytest.approx(chance, abs=0.01)


def test_embeddings_reproduce_the_similarity(features):
    train, test = features
    method = SemanticMatching(c=1.0).fit(train)
    similarity = method.similarity(test.images[:5], test.texts[:7])
    manual = method.encode_images(test.images[:5]) @ method.encode_texts(test.texts[:7]).T
    np.testing.assert_allclose(similarity, manual)
    assert similarity.shape == (5, 7)
    assert np.all(np.abs(similarity) <= 1 + 1e-9)  # normalized correlation


def test_sm_selects_c_on_validation_only(features):
    train, _ = features
    fit_rows, val_rows = validation_split(train.labels, seed=0)
    method = SemanticMatching().fit(train.subset(fit_rows), train.subset(val_rows))
    assert method.image_c_ in (0.01, 0.1, 1.0, 10.0)
    assert method.text_c_ in (0.01, 0.1, 1.0, 10.0)
