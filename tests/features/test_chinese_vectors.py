from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import normalize

from fglab.data.graph import knn_graph
from fglab.features.chinese_vectors import (
    DIM,
    cooccurrence_counts,
    ppmi,
    train_chinese_word_vectors,
)

SPORTS = ["比赛", "冠军", "球队", "运动员", "教练", "进球"]
ECONOMY = ["经济", "市场", "企业", "投资", "增长", "价格"]


def tiny_corpus(seed: int = 0) -> list[list[str]]:
    """Texts that each talk about one topic: sports words co-occur, economy words co-occur."""
    rng = np.random.default_rng(seed)
    return [list(rng.choice(SPORTS if i % 2 else ECONOMY, size=12)) for i in range(120)]


def topic_margin(vectors: np.ndarray) -> float:
    """Mean cosine within a topic minus mean cosine across topics."""
    unit = normalize(vectors)
    sims = unit @ unit.T
    n = len(SPORTS)
    within = (sims[:n, :n].sum() - n + sims[n:, n:].sum() - n) / (2 * n * (n - 1))
    return float(within - sims[:n, n:].mean())


@pytest.mark.parametrize("method", ["ppmi-svd", "word2vec"])
def test_vectors_separate_topics_and_repeat_exactly(method):
    vocabulary = SPORTS + ECONOMY + ["从未出现"]
    vectors = train_chinese_word_vectors(tiny_corpus(), vocabulary, seed=3, method=method)
    assert vectors.shape == (len(vocabulary), DIM)
    assert not vectors[-1].any()  # a word that never occurs gets a zero row
    assert topic_margin(vectors[:-1]) > 0.3
    again = train_chinese_word_vectors(tiny_corpus(), vocabulary, seed=3, method=method)
    np.testing.assert_array_equal(vectors, again)


def test_word_graph_links_words_of_one_topic():
    vocabulary = SPORTS + ECONOMY
    vectors = train_chinese_word_vectors(tiny_corpus(), vocabulary, seed=0)
    adjacency = knn_graph(vectors, k=3).toarray()
    n = len(SPORTS)
    within = adjacency[:n, :n].sum() + adjacency[n:, n:].sum()
    assert within > 0.9 * adjacency.sum()


def test_ppmi_of_cooccurrences():
    counts = cooccurrence_counts([["a", "b", "x", "c"]], ["a", "b", "c"], window=1)
    assert counts.toarray().tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]  # x is skipped
    weights = ppmi(counts).toarray()
    assert (weights >= 0).all() and weights[0, 1] > 0 and weights[0, 2] == 0


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="glove"):
        train_chinese_word_vectors([["a"]], ["a"], 0, method="glove")
