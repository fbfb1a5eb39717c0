"""The contract every retrieval method keeps, baselines and the fglab model alike.

A method is fitted on a training :class:`FeatureSet` (and may select hyperparameters on a
validation one, never on test), then maps images and texts into one space where the inner
product ranks: ``similarity(images, texts) = encode_images(images) @ encode_texts(texts).T``.
That makes every method indexable by the same inner-product search.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from scipy import sparse

from fglab.data.collection import pair_labels
from fglab.data.splits import validation_split
from fglab.features.featureset import FeatureSet

NO_CATEGORIES = "it cannot train on pairs without categories (use cca, pls, fglab)"


@dataclass
class ReportContext:
    """What a report may name: the training pairs' ids and texts, the category names."""

    text_ids: list[str]
    image_ids: list[str]
    texts: list[str]
    categories: list[str]


class RetrievalMethod(ABC):
    """Estimator-style: ``__init__`` stores parameters, ``fit`` learns and returns self."""

    #: "any": any text view (tf-idf by default, LDA or sentence embeddings when named);
    #: "bag_of_words": tf-idf only, with its vocabulary.
    text_input: ClassVar[str] = "any"
    #: True: ``fit`` wants a held-out validation part of train for selection (and may refit on
    #: both parts itself). False: it is fitted on the whole training split.
    selects_on_validation: ClassVar[bool] = False
    #: True: learns from categories (class posteriors, a label space), so it cannot train on a
    #: collection without them (pair level).
    needs_categories: ClassVar[bool] = False
    #: The (image, text) views the method must have, e.g. both towers of one pretrained
    #: model for a method that ranks in that model's space; None: any views.
    fixed_views: ClassVar[tuple[str, str] | None] = None

    @abstractmethod
    def fit(self, train: FeatureSet, validation: FeatureSet | None = None) -> RetrievalMethod:
        """Learn from ``train``; ``validation`` (a held-out part of train) is for selection."""

    @abstractmethod
    def encode_images(self, images: np.ndarray) -> np.ndarray:
        """(n, d_image) features -> (n, d) embeddings."""

    @abstractmethod
    def encode_texts(self, texts) -> np.ndarray:
        """(n, d_text) features -> (n, d) embeddings."""

    def write_report(self, out_dir: Path, context: ReportContext) -> None:  # noqa: B027
        """Optional: write what the method learned (plots, tables) into ``out_dir``."""

    def similarity(self, images: np.ndarray, texts) -> np.ndarray:
        """(n_images, n_texts) scores, higher = more similar."""
        return self.encode_images(images) @ self.encode_texts(texts).T


def fit_method(
    method: RetrievalMethod, train: FeatureSet, seed: int, pairs: bool = False
) -> RetrievalMethod:
    """The one way a method is fitted on a training split: a method that selects on
    validation gets the seeded validation part of ``train`` (and may refit on all of it
    itself); the others get all of ``train``. ``pairs``: the categories are ignored, each
    pair is its own class (its only positive is its partner)."""
    if pairs:
        check_trains_on_pairs(method, type(method).__name__)
        train = train.with_labels(pair_labels(len(train)))
    if method.selects_on_validation:
        fit_rows, val_rows = validation_split(train.labels, seed)
        return method.fit(train.subset(fit_rows), train.subset(val_rows))
    return method.fit(train)


def check_trains_on_pairs(method: RetrievalMethod | type[RetrievalMethod], name: str) -> None:
    """A ValueError saying so if ``method`` (called ``name``; a method or its class) cannot
    train without categories."""
    if method.needs_categories:
        raise ValueError(f"{name} learns from categories; {NO_CATEGORIES}")


def unit_rows(rows) -> np.ndarray:
    """float32 rows (dense or sparse) scaled to unit length (a zero row stays zero): inner
    products become cosines."""
    dense = rows.toarray() if sparse.issparse(rows) else np.asarray(rows)
    dense = dense.astype(np.float32)
    return dense / np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12)


def centered_cosine(embeddings: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Rows centered by ``mean`` and scaled to unit length: inner products become the
    normalized correlation used by Rasiwasia et al. (2010)."""
    centered = np.asarray(embeddings, dtype=np.float64) - mean
    norms = np.linalg.norm(centered, axis=1, keepdims=True)
    return centered / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class MethodSpec:
    """How to build a method for one seed (the registry lists these by name); ``options``
    come from a run's config. ``method``: the class it builds, or its "module:Class" name,
    imported on use (the fglab model's modules load torch, which listing names should not)."""

    name: str
    build: Callable[..., RetrievalMethod]  # build(seed=..., **options)
    description: str
    method: type[RetrievalMethod] | str
    in_default_table: bool = True  # False: run only when named (slow to fit 5 seeds)

    @property
    def method_class(self) -> type[RetrievalMethod]:
        """The class ``build`` returns: its traits (``text_input``, ``needs_categories``, ...)
        without building or fitting one."""
        if isinstance(self.method, str):
            module, _, name = self.method.partition(":")
            return getattr(importlib.import_module(module), name)
        return self.method
