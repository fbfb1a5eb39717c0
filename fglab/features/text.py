"""Bag-of-words text features: tf-idf over a vocabulary learned from training texts only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer


class TfidfTextFeatures:
    """tf-idf (sublinear tf, l2 rows) over words seen in at least ``min_df`` training texts."""

    def __init__(
        self,
        tokenizer: Callable[[Any], list[str]],
        min_df: int = 3,
        max_features: int | None = 5000,
    ) -> None:
        self.tokenizer = tokenizer
        self.min_df = min_df
        self.max_features = max_features

    def fit(self, texts: list) -> TfidfTextFeatures:
        self.vectorizer_ = TfidfVectorizer(
            analyzer=self.tokenizer,
            min_df=self.min_df,
            max_features=self.max_features,
            sublinear_tf=True,
        )
        self.vectorizer_.fit(texts)
        self.vocabulary_: list[str] = list(self.vectorizer_.get_feature_names_out())
        return self

    def transform(self, texts: list) -> sparse.csr_matrix:
        return self.vectorizer_.transform(texts).tocsr()
