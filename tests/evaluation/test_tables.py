"""Result tables and the evaluation protocol."""

from __future__ import annotations

import numpy as np

from fglab.data.splits import validation_split
from fglab.evaluation.protocol import evaluate_similarity
from fglab.evaluation.tables import results_markdown


def test_both_directions_use_the_transposed_scores():
    labels = np.array([0, 0, 1, 1])
    # Perfect for images as queries, while texts as queries see a different matrix.
    similarity = np.array(
        [[1.0, 0.9, 0.0, 0.0], [0.9, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.9], [0.0, 0.0, 0.9, 1.0]]
    )
    similarity[:, 0] = [0.0, 0.0, 2.0, 2.0]  # text 0 now prefers the wrong images
    scores = evaluate_similarity(similarity, labels)
    assert scores.map_all["img2txt"] != scores.map_all["txt2img"]
    assert scores.map_all["avg"] == (scores.map_all["img2txt"] + scores.map_all["txt2img"]) / 2
    assert len(scores.pr_curves["img2txt"]) == 11


def test_markdown_has_one_row_per_method_with_mean_and_std():
    stats = {"mean": 0.25, "std": 0.01, "runs": [0.24, 0.26]}
    summary = {m: {d: stats for d in ("img2txt", "txt2img", "avg")} for m in ("map_all", "map_100")}
    summary |= {"seconds": 3.0, "image_view": "image:sift", "text_view": "text:lda"}
    payload = {"dataset": "toy", "n_train": 10, "n_test": 4, "seeds": [0, 1],
               "methods": {"cca": summary}}
    markdown = results_markdown(payload)
    assert "| cca | 0.2500 ± 0.0100 |" in markdown
    assert "2 seeds" in markdown and "image:sift + text:lda" in markdown


def test_validation_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(5), 20)
    fit_a, val_a = validation_split(labels, seed=0)
    fit_b, val_b = validation_split(labels, seed=1)
    assert not set(fit_a) & set(val_a)
    assert len(fit_a) + len(val_a) == len(labels)
    assert np.bincount(labels[val_a]).tolist() == [4] * 5
    assert not np.array_equal(val_a, val_b)
    np.testing.assert_array_equal(val_a, validation_split(labels, seed=0)[1])


def test_exact_pair_scores_rank_each_items_own_partner():
    labels = np.array([0, 0, 1, 1])
    similarity = np.eye(4)
    similarity[1] = [2.0, 1.0, 0.0, 0.0]  # image 1 ranks text 0 above its own text
    scores = evaluate_similarity(similarity, labels)
    assert scores.recall["img2txt"] == {"1": 0.75, "5": 1.0, "10": 1.0}
    assert scores.median_rank["img2txt"] == 1.0
    # as a query, text 0 now finds image 1 first (score 2): its partner is second
    assert scores.recall["txt2img"]["1"] == 0.75


def test_markdown_has_an_exact_pair_table_and_marks_missing_recall():
    stats = {"mean": 0.5, "std": 0.0, "runs": [0.5]}
    base = {m: {d: stats for d in ("img2txt", "txt2img", "avg")} for m in ("map_all", "map_100")}
    base |= {"seconds": 1.0, "image_view": "image:sift", "text_view": "text:tfidf"}
    recall = {d: {k: stats for k in ("1", "5", "10")} for d in ("img2txt", "txt2img")}
    rank = {"mean": 3.0, "std": 0.5, "runs": [3.0]}
    fresh = base | {"recall": recall, "median_rank": {"img2txt": rank, "txt2img": rank}}
    payload = {"dataset": "toy", "n_train": 10, "n_test": 4, "seeds": [0],
               "methods": {"new": fresh, "old": base}}
    markdown = results_markdown(payload)
    assert "| new | 0.5000 ± 0.0000 | 0.5000 ± 0.0000 | 0.5000 ± 0.0000 | 3.0 ± 0.5 |" in markdown
    assert "| old | – | – |" in markdown
