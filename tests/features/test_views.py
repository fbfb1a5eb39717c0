"""Default feature views: the named ones kept, the data set's and pair level's otherwise, and
the word-reading methods refused a view without words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fglab.data.dataset import CrossModalDataset, Split
from fglab.features.views import (
    DEFAULT_IMAGE_VIEW,
    DEFAULT_TEXT_VIEW,
    PAIR_IMAGE_VIEW,
    PAIR_TEXT_VIEW,
    check_text_view,
    choose_views,
    default_image_view,
    default_text_view,
    default_views,
)


def _dataset(shipped: dict[str, np.ndarray]) -> CrossModalDataset:
    split = Split("train", ["t"], ["i"], np.zeros(1, np.int64), ["a text"], [""], [None], shipped)
    return CrossModalDataset("tiny", Path("."), "en", ["a"], split, split, [], frozenset(), True)


def test_defaults_with_categories_and_at_pair_level():
    photos = _dataset({})
    assert default_views(photos) == (DEFAULT_IMAGE_VIEW, DEFAULT_TEXT_VIEW)
    assert default_views(photos, pairs=True) == (PAIR_IMAGE_VIEW, PAIR_TEXT_VIEW)
    assert (DEFAULT_IMAGE_VIEW, DEFAULT_TEXT_VIEW) == ("image:efficientnet-lite0", "text:tfidf")
    assert default_text_view() == "text:tfidf" and default_text_view(True) == "text:tfidf+use"


def test_a_data_set_with_shipped_sift_keeps_it_even_at_pair_level():
    sift = _dataset({"image:sift": np.zeros((1, 4))})
    assert default_image_view(sift) == default_image_view(sift, pairs=True) == "image:sift"
    assert default_views(sift, pairs=True) == ("image:sift", PAIR_TEXT_VIEW)


def test_named_views_are_kept():
    views = default_views(_dataset({}), True, "image:resnet", "text:lda")
    assert views == ("image:resnet", "text:lda")


def test_a_method_that_reads_words_is_refused_a_view_without_words():
    check_text_view("fglab", "bag_of_words", "text:tfidf+e5")
    check_text_view("cca", "any", "text:lda")
    with pytest.raises(ValueError, match="fglab reads words"):
        check_text_view("fglab", "bag_of_words", "text:lda")


def test_a_model_folder_gives_its_towers_and_a_fixed_method_keeps_them():
    photos = _dataset({})
    assert choose_views(photos, "cca", "any", model_folder=True) == ("image:clip", "text:clip")
    assert choose_views(photos, "fglab", "bag_of_words", model_folder=True) == (
        "image:clip", "text:tfidf+clip")  # the words beside the text tower
    assert choose_views(photos, "fglab", "bag_of_words", text_view="text:clip") == (
        DEFAULT_IMAGE_VIEW, "text:tfidf+clip")
    fixed = ("image:clip", "text:clip")
    assert choose_views(photos, "pretrained", "any", fixed) == fixed
    with pytest.raises(ValueError, match="its views are image:clip and text:clip"):
        choose_views(photos, "pretrained", "any", fixed, image_view="image:efficientnet-lite0")
