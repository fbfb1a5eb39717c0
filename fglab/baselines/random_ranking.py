"""A random ranking: the chance level every method must clear."""

from __future__ import annotations

import numpy as np

from fglab.baselines.persist import SavedAsArrays
from fglab.features.featureset import FeatureSet
from fglab.method import RetrievalMethod


class RandomRetrieval(SavedAsArrays, RetrievalMethod):
    """Independent Gaussian embeddings per item: rankings are uniformly random."""

    def __init__(self, seed: int = 0, dim: int = 64) -> None:
        self.seed = seed
        self.dim = dim

    def fit(self, train: FeatureSet, validation: FeatureSet | None = None):
        self.rng_ = np.random.default_rng(self.seed)
        return self

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        return self.rng_.standard_normal((images.shape[0], self.dim))

    def encode_texts(self, texts) -> np.ndarray:
        return self.rng_.standard_normal((texts.shape[0], self.dim))
