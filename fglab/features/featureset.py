"""The features a retrieval method sees: one image row and one text row per pair."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from fglab.features.text import TfidfTextFeatures


@dataclass
class FeatureSet:
    """Aligned image and text features of n pairs, with their category labels."""

    images: np.ndarray  # (n, d_image)
    texts: np.ndarray | sparse.csr_matrix  # (n, d_text)
    labels: np.ndarray  # (n,)
    vocabulary: list[str] | None = None  # names of the text columns for bag-of-words views
    tokens: list[list[str]] | None = None  # each text's words, for views built from words
    language: str = "en"  # "en" or "zh"
    documents: list[str] | None = None  # the raw texts, for teachers that read sentences
    # The fitted tf-idf that made ``texts`` (text:tfidf), to turn new raw texts into features.
    text_featurizer: TfidfTextFeatures | None = None

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.shape[0] != n or self.texts.shape[0] != n:
            raise ValueError(
                f"misaligned features: {self.images.shape[0]} image rows, "
                f"{self.texts.shape[0]} text rows, {n} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> FeatureSet:
        tokens = [self.tokens[i] for i in rows] if self.tokens is not None else None
        documents = [self.documents[i] for i in rows] if self.documents is not None else None
        return FeatureSet(
            self.images[rows],
            self.texts[rows],
            self.labels[rows],
            self.vocabulary,
            tokens,
            self.language,
            documents,
            self.text_featurizer,
        )

    def with_labels(self, labels: np.ndarray) -> FeatureSet:
        """The same pairs under other labels (e.g. each pair its own class)."""
        return dataclasses.replace(self, labels=np.asarray(labels))

    def dense_texts(self) -> np.ndarray:
        return self.texts.toarray() if sparse.issparse(self.texts) else np.asarray(self.texts)
