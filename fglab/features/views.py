"""Named feature views of a data set, e.g. ``image:sift`` (shipped) or ``text:tfidf``."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from fglab.data.dataset import CrossModalDataset, Split
from fglab.data.tokenize import make_tokenizer
from fglab.features.featureset import FeatureSet
from fglab.features.text import TfidfTextFeatures

SENTENCE_TEXT_VIEWS = ("text:minilm", "text:e5", "text:use", "text:clip")
COMPUTED_TEXT_VIEWS = ("text:tfidf", *SENTENCE_TEXT_VIEWS)
#: tf-idf followed by a sentence embedding of each text: the words for the graph branch, the
#: pretrained encoder's reading beside them (one sparse row per text).
WORDS_AND_SENTENCE_VIEWS = {
    "text:tfidf+use": "text:use", "text:tfidf+e5": "text:e5", "text:tfidf+minilm": "text:minilm",
    "text:tfidf+clip": "text:clip",
}

#: The default views with categories, for every method alike: tf-idf (the words fglab's graph
#: needs; the literature's shipped LDA view only when named) and the data set's image view
#: (its shipped SIFT, else EfficientNet-Lite0).
DEFAULT_TEXT_VIEW = "text:tfidf"
DEFAULT_IMAGE_VIEW = "image:efficientnet-lite0"
#: The default views at pair level (the exact item), chosen on validation (docs/results.md,
#: "Pair level"): tf-idf and USE for the text; EfficientNet-Lite0 and -Lite2 side by side
#: where the image view would be Lite0 (a data set with SIFT keeps it).
PAIR_TEXT_VIEW = "text:tfidf+use"
PAIR_IMAGE_VIEW = "image:efficientnet-lite0+efficientnet-lite2"


def reads_words(text_view: str) -> bool:
    """Whether ``text_view`` starts with tf-idf over a learned vocabulary."""
    return text_view == "text:tfidf" or text_view in WORDS_AND_SENTENCE_VIEWS


def check_text_view(method_name: str, text_input: str, text_view: str) -> None:
    """Refuse ``text_view`` for a method that reads words (``text_input`` "bag_of_words") when
    the view has none."""
    if text_input == "bag_of_words" and not reads_words(text_view):
        raise ValueError(
            f"{method_name} reads words (its word graph needs text:tfidf), not {text_view}; "
            f"leave it out of --methods or use --text-view text:tfidf (or text:tfidf+e5)"
        )


def text_rows(
    featurizer: TfidfTextFeatures, tokens: list[list[str]], texts: list[str], text_view: str,
    progress: bool = False,
) -> sparse.csr_matrix:
    """The rows of a tf-idf view (``text:tfidf`` or ``text:tfidf+SENTENCE``) of ``texts``,
    already split into ``tokens``: tf-idf, then the sentence embedding if the view has one."""
    rows = featurizer.transform(tokens)
    sentence_view = WORDS_AND_SENTENCE_VIEWS.get(text_view)
    if sentence_view is None:
        return rows
    from fglab.features.sentence import embed_texts

    embedded = embed_texts(texts, sentence_view, progress=progress)
    return sparse.hstack([rows, sparse.csr_matrix(embedded)], format="csr", dtype=np.float32)


def available_views(dataset: CrossModalDataset) -> list[str]:
    return sorted(dataset.train.shipped) + list(COMPUTED_TEXT_VIEWS) + list(
        WORDS_AND_SENTENCE_VIEWS
    )


def default_image_view(dataset: CrossModalDataset, pairs: bool = False) -> str:
    """The data set's shipped SIFT if it has it, else DEFAULT_IMAGE_VIEW (``pairs``:
    PAIR_IMAGE_VIEW)."""
    if "image:sift" in dataset.train.shipped:
        return "image:sift"
    return PAIR_IMAGE_VIEW if pairs else DEFAULT_IMAGE_VIEW


def default_text_view(pairs: bool = False) -> str:
    """DEFAULT_TEXT_VIEW, or PAIR_TEXT_VIEW at pair level (``pairs``)."""
    return PAIR_TEXT_VIEW if pairs else DEFAULT_TEXT_VIEW


def default_views(
    dataset: CrossModalDataset,
    pairs: bool = False,
    image_view: str | None = None,
    text_view: str | None = None,
) -> tuple[str, str]:
    """(image view, text view): the named ones, the defaults for those not named."""
    if text_view is None:
        text_view = default_text_view(pairs)
    return image_view or default_image_view(dataset, pairs), text_view


#: The views of a model folder (``--model-path``): both towers of one pretrained model; a
#: method that reads words gets tf-idf beside the text tower.
PRETRAINED_VIEWS = ("image:clip", "text:clip")
PRETRAINED_WORDS_VIEW = "text:tfidf+clip"


def choose_views(
    dataset: CrossModalDataset, method_name: str, text_input: str,
    fixed_views: tuple[str, str] | None = None, pairs: bool = False,
    image_view: str | None = None, text_view: str | None = None, model_folder: bool = False,
) -> tuple[str, str]:
    """The (image, text) views a method gets: those it must have (``fixed_views``), else the
    named ones, the model folder's where one is given (``model_folder``), else the defaults.
    A method that reads words (``text_input`` "bag_of_words") given ``text:clip`` gets
    ``text:tfidf+clip``: its words and the text tower side by side."""
    if fixed_views is not None:
        named = (image_view or fixed_views[0], text_view or fixed_views[1])
        if named != fixed_views:
            raise ValueError(
                f"{method_name} ranks in the pretrained model's own space: its views are "
                f"{' and '.join(fixed_views)} (with --model-path), not {' and '.join(named)}"
            )
        return fixed_views
    if model_folder:
        image_view, text_view = image_view or PRETRAINED_VIEWS[0], text_view or PRETRAINED_VIEWS[1]
    if text_input == "bag_of_words" and text_view == PRETRAINED_VIEWS[1]:
        text_view = PRETRAINED_WORDS_VIEW
    image_view, text_view = default_views(dataset, pairs, image_view, text_view)
    check_text_view(method_name, text_input, text_view)
    return image_view, text_view


def build_features(
    dataset: CrossModalDataset, image_view: str, text_view: str, tfidf_min_df: int = 3
) -> tuple[FeatureSet, FeatureSet]:
    """Train and test feature sets; anything learned (vocabulary, idf) sees train only."""
    train_images, test_images = (_image_matrix(dataset, s, image_view) for s in ("train", "test"))
    vocabulary = train_tokens = test_tokens = tfidf = None
    if reads_words(text_view):
        tokenizer = make_tokenizer(dataset.language, dataset.stopwords)
        train_tokens = [tokenizer(t) for t in dataset.train.texts]
        test_tokens = [tokenizer(t) for t in dataset.test.texts]
        tfidf = TfidfTextFeatures(_pretokenized, tfidf_min_df)
        tfidf.fit(train_tokens)
        train_texts = text_rows(tfidf, train_tokens, dataset.train.texts, text_view, True)
        test_texts = text_rows(tfidf, test_tokens, dataset.test.texts, text_view, True)
        vocabulary = tfidf.vocabulary_
    elif text_view in SENTENCE_TEXT_VIEWS:  # sentence embeddings, cached per text
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
    from fglab.features.image_views import image_view_width

    return image_view_width(view)  # an unknown view fails here, naming the known ones


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
