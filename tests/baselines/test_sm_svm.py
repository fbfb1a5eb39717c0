"""Semantic matching with an RBF SVM on the image side (``sm-svm``), on eng-wiki features."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fglab.baselines import SemanticMatching
from fglab.baselines.semantic import SVM_C_GRID
from fglab.data.splits import validation_split
from fglab.evaluation.protocol import evaluate_method
from fglab.features.views import build_features
from fglab.registry import get_method


@pytest.fixture(scope="module")
def features(eng_wiki):
    return build_features(eng_wiki, "image:sift", "text:lda")


def test_sm_svm_selects_c_on_validation_and_beats_chance(features):
    train, test = features
    fit_rows, val_rows = validation_split(train.labels, seed=0)
    method = get_method("sm-svm").build(seed=0)
    assert isinstance(method, SemanticMatching) and method.image_classifier == "svm"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the deprecation is handled inside
        method.fit(train.subset(fit_rows), train.subset(val_rows))
    assert method.image_c_ in SVM_C_GRID
    posteriors = method.image_model_.predict_proba(test.images[:20])
    np.testing.assert_allclose(posteriors.sum(axis=1), 1.0, atol=1e-6)
    assert evaluate_method(method, test).map_all["avg"] > 0.2  # chance is about 0.118
