"""The evaluation protocol scored a block of queries at a time gives the whole-matrix numbers."""

from __future__ import annotations

import numpy as np
import pytest

from fglab.evaluation import protocol
from fglab.evaluation.protocol import evaluate_blocked, evaluate_embeddings, evaluate_similarity


def _same(a, b) -> None:
    assert a.map_all == pytest.approx(b.map_all, abs=1e-12)
    assert a.map_100 == pytest.approx(b.map_100, abs=1e-12)
    for direction in ("img2txt", "txt2img"):
        np.testing.assert_allclose(a.pr_curves[direction], b.pr_curves[direction], atol=1e-12)
    assert a.recall == b.recall and a.median_rank == b.median_rank


def test_blocks_of_any_size_give_the_whole_matrix_metrics():
    rng = np.random.default_rng(0)
    n = 150
    labels = rng.integers(0, 5, n)
    # ties included: the stable order must hold across blocks
    similarity = np.round(rng.normal(size=(n, n)), 1) + 3 * np.eye(n) * rng.random(n)
    whole = evaluate_similarity(similarity, labels)
    for block in (1, 7, 64, n):
        _same(evaluate_blocked({"img2txt": lambda rows: similarity[rows],
                                "txt2img": lambda rows: similarity[:, rows].T},
                               labels, block=block), whole)


def test_embeddings_are_scored_blockwise_as_their_products(monkeypatch):
    rng = np.random.default_rng(1)
    images, texts = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    labels = rng.integers(0, 3, 300)
    whole = evaluate_similarity(images @ texts.T, labels)
    monkeypatch.setattr(protocol, "EVALUATION_BLOCK", 32)
    _same(evaluate_embeddings(images, texts, labels), whole)
    # a large split goes through the blocks also when handed a whole matrix
    _same(evaluate_similarity(images @ texts.T, labels), whole)
