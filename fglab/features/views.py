"""Named feature views of a data set, e.g. ``image:sift`` (shipped) or ``text:tfidf``."""

from __future__ import annotations

import numpy as np

from fglab.data.tokenize import make_tokenizer
from fglab.data.wikipedia import CrossModalDataset, Split
from fglab.features.featureset import FeatureSet
from fglab.features.text import TfidfTextFeatures

COMPUTED_TEXT_VIEWS = ("text:tfidf", "text:minilm", "text:e5")


def available_views(dataset: CrossModalDataset) -> list[str]:
    return sorted(dataset.train.shipped) + list(COMPUTED_TEXT_VIEWS)


def default_image_view(dataset: CrossModalDataset) -> str:
    if "image:sift" in dataset.train.shipped:
        return "image:sift"
    return "image:efficientnet-lite0"


def build_features(
    dataset: CrossModalDataset, image_view: str, text_view: str, tfidf_min_df: int = 3
) -> tuple[FeatureSet, FeatureSet]:
    """Train and test feature sets; anything learned (vocabulary, idf) sees train only."""
    train_images, test_images = (_image_matrix(dataset, s, image_view) for s in ("train", "test"))
    vocabulary = train_tokens = test_tokens = tfidf = None
    if text_view == "text:tfidf":
        tokenizer = make_tokenizer(dataset.language, dataset.stopwords)
        train_tokens = [tokenizer(t) for t in dataset.train.texts]
        test_tokens = [tokenizer(t) for t in dataset.test.texts]
        tfidf = TfidfTextFeatures(_pretokenized, tfidf_min_df)
        tfidf.fit(train_tokens)
        train_texts, test_texts = tfidf.transform(train_tokens), tfidf.transform(test_tokens)
        vocabulary = tfidf.vocabulary_
    elif text_view in ("text:minilm", "text:e5"):  # sentence embeddings, cached per text
        from fglab.features.sentence import embed_texts

        train_texts = embed_texts(dataset.train.texts, text_view)
        test_texts = embed_texts(dataset.test.texts, text_view)
    elif text_view in dataset.train.shipped:
        train_texts, test_texts = dataset.train.shipped[text_view], dataset.test.shipped[text_view]
    else:
        raise ValueError(
            f"unknown text view {text_view!r} for {dataset.name}; "
            f"available: {', '.join(v for v in available_views(dataset) if v.startswith('text:'))}"
        )
    return (
        FeatureSet(
            train_images,
            train_texts,
            dataset.train.labels,
            vocabulary,
            train_tokens,
            dataset.language,
            list(dataset.train.texts),
            tfidf,
        ),
        FeatureSet(
            test_images,
            test_texts,
            dataset.test.labels,
            vocabulary,
            test_tokens,
            dataset.language,
            list(dataset.test.texts),
            tfidf,
        ),
    )


def _pretokenized(tokens: list[str]) -> list[str]:
    """The analyzer for texts that are already lists of words."""
    return tokens


def image_view_dim(dataset: CrossModalDataset, view: str) -> int:
    """The width of image view ``view`` of ``dataset``, known before any image is read."""
    if view in dataset.train.shipped:
        return int(dataset.train.shipped[view].shape[1])
    from fglab.features.image_views import IMAGE_FEATURE_DIM, image_extractor

    image_extractor(view)  # an unknown view fails here, naming the known ones
    return IMAGE_FEATURE_DIM


def _image_matrix(dataset: CrossModalDataset, split_name: str, view: str) -> np.ndarray:
    split: Split = dataset.split(split_name)
    if view in split.shipped:
        return split.shipped[view]
    if view.startswith("image:") and dataset.has_images:
        from fglab.features.image_views import extract_image_view

        return extract_image_view(split, view)
    raise ValueError(
        f"unknown image view {view!r} for {dataset.name}; "
        f"available: {', '.join(v for v in available_views(dataset) if v.startswith('image:'))}"
    )
