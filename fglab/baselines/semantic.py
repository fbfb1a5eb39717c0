"""Semantic matching (SM) and semantic correlation matching (SCM), Rasiwasia et al. (2010):
each modality is mapped to its vector of class posteriors, ranked by normalized correlation."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fglab.baselines.correlation import CCARetrieval
from fglab.features.featureset import FeatureSet
from fglab.method import RetrievalMethod, centered_cosine

C_GRID = (0.01, 0.1, 1.0, 10.0)


def _posterior_model(features: np.ndarray, labels: np.ndarray, c: float):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    return model.fit(features, labels)


def _select_c(
    train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray | None, val_y: np.ndarray | None
) -> float:
    """The regularization with the best validation accuracy (1.0 without validation)."""
    if val_x is None or val_y is None:
        return 1.0
    scores = {c: _posterior_model(train_x, train_y, c).score(val_x, val_y) for c in C_GRID}
    return max(scores, key=scores.get)


class SemanticMatching(RetrievalMethod):
    """SM: multiclass logistic regression per modality; both land in the simplex of class
    posteriors, compared by centered correlation. ``C`` is chosen on validation."""

    selects_on_validation = True

    def __init__(self, c: float | None = None) -> None:
        self.c = c

    def _image_inputs(self, images: np.ndarray) -> np.ndarray:
        return images

    def _text_inputs(self, texts) -> np.ndarray:
        return texts.toarray() if hasattr(texts, "toarray") else np.asarray(texts)

    def _fit_inputs(self, train: FeatureSet) -> None:
        """Hook for SCM to learn its CCA before the classifiers."""

    def fit(self, train: FeatureSet, validation: FeatureSet | None = None):
        self._fit_inputs(train)
        tr_i, tr_t = self._image_inputs(train.images), self._text_inputs(train.texts)
        val_i = val_t = val_y = None
        if validation is not None:
            val_i = self._image_inputs(validation.images)
            val_t = self._text_inputs(validation.texts)
            val_y = validation.labels
        self.image_c_ = self.c or _select_c(tr_i, train.labels, val_i, val_y)
        self.text_c_ = self.c or _select_c(tr_t, train.labels, val_t, val_y)
        if validation is not None:  # refit on all training data with the chosen C
            tr_i, tr_t = np.vstack([tr_i, val_i]), np.vstack([tr_t, val_t])
            labels = np.concatenate([train.labels, validation.labels])
        else:
            labels = train.labels
        self.image_model_ = _posterior_model(tr_i, labels, self.image_c_)
        self.text_model_ = _posterior_model(tr_t, labels, self.text_c_)
        n_classes = len(self.image_model_.classes_)
        self.center_ = np.full(n_classes, 1.0 / n_classes)
        return self

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        posteriors = self.image_model_.predict_proba(self._image_inputs(images))
        return centered_cosine(posteriors, self.center_)

    def encode_texts(self, texts) -> np.ndarray:
        posteriors = self.text_model_.predict_proba(self._text_inputs(texts))
        return centered_cosine(posteriors, self.center_)


class SemanticCorrelationMatching(SemanticMatching):
    """SCM: CCA first, then semantic matching on the CCA projections of each modality."""

    def _fit_inputs(self, train: FeatureSet) -> None:
        self.cca_ = CCARetrieval().fit(train)

    def _image_inputs(self, images: np.ndarray) -> np.ndarray:
        return self.cca_._project_images(images)

    def _text_inputs(self, texts) -> np.ndarray:
        return self.cca_._project_texts(texts)
