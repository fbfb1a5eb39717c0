"""Bag-of-words text features: tf-idf over a vocabulary learned from training texts only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from fglab.io import atomic_write, atomic_write_text

SETTINGS_FILE, IDF_FILE = "tfidf.json", "idf.npy"


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

    def save(self, directory: Path) -> None:
        """``directory``/tfidf.json (settings, the vocabulary in column order) and idf.npy."""
        directory = Path(directory)
        idf = np.asarray(self.vectorizer_.idf_, dtype=np.float64)
        atomic_write(directory / IDF_FILE, lambda tmp: _save_array(tmp, idf))
        settings = {"min_df": self.min_df, "max_features": self.max_features,
                    "sublinear_tf": True, "vocabulary": self.vocabulary_}
        atomic_write_text(directory / SETTINGS_FILE, json.dumps(settings, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path, tokenizer: Callable[[Any], list[str]]) -> TfidfTextFeatures:
        """The features saved in ``directory``, splitting texts with ``tokenizer``."""
        directory = Path(directory)
        for name in (SETTINGS_FILE, IDF_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"tf-idf features in {directory}: {name} is missing")
        settings = json.loads((directory / SETTINGS_FILE).read_text(encoding="utf-8"))
        idf = np.load(directory / IDF_FILE, allow_pickle=False)
        vocabulary = [str(word) for word in settings["vocabulary"]]
        if idf.shape != (len(vocabulary),) or idf.dtype.kind != "f":
            raise ValueError(f"{directory / IDF_FILE}: {idf.shape} weights for "
                             f"{len(vocabulary)} words")
        features = cls(tokenizer, settings["min_df"], settings["max_features"])
        features.vectorizer_ = TfidfVectorizer(
            analyzer=tokenizer, vocabulary=vocabulary,
            sublinear_tf=bool(settings["sublinear_tf"]),
        )
        features.vectorizer_.idf_ = idf
        features.vocabulary_ = vocabulary
        return features


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a handle: np.save would add ".npy" to a path
        np.save(handle, array, allow_pickle=False)
