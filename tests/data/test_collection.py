"""A manifest as a training collection: pairs, labels, splits, and the errors that come
before any training."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from fglab.data.collection import CollectionError, is_labeled, load_training_collection
from fglab.data.splits import is_pair_level, validation_split
from tests.data.fixtures import write_image, write_manifest_collection


def _spec(path) -> str:
    return f"manifest:{path}"


def test_a_labeled_csv_with_a_split_column_keeps_its_split_and_labels(tmp_path):
    dataset = load_training_collection(_spec(write_manifest_collection(tmp_path)))
    assert dataset.categories == ["art", "ocean", "sport"]
    assert is_labeled(dataset)
    assert len(dataset.train) == 18 and len(dataset.test) == 6
    assert all(i.endswith("-3") or i.endswith("-7") for i in dataset.test.text_ids)
    art = dataset.categories.index("art")
    assert all(
        (label == art) == tid.startswith("art-")
        for tid, label in zip(dataset.train.text_ids, dataset.train.labels, strict=True)
    )
    assert dataset.language == "en" and dataset.has_images
    assert dataset.train.image_paths[0].is_file()


def test_an_unlabeled_jsonl_without_split_is_split_80_20_by_seed_at_pair_level(
    tmp_path, caplog
):
    path = write_manifest_collection(tmp_path, per_topic=10, labeled=False, split=False,
                                     fmt="jsonl")
    with caplog.at_level(logging.WARNING):
        first = load_training_collection(_spec(path), split_seed=0)
    assert "seeded 80/20 split (seed 0)" in caplog.text
    assert not is_labeled(first)
    assert len(first.train) == 24 and len(first.test) == 6
    assert is_pair_level(first.train.labels)
    assert all(first.train.texts)
    again = load_training_collection(_spec(path), split_seed=0)
    other = load_training_collection(_spec(path), split_seed=1)
    assert again.test.text_ids == first.test.text_ids
    assert other.test.text_ids != first.test.text_ids
    recorded = load_training_collection(_spec(path), test_ids=first.test.text_ids[:2])
    assert recorded.test.text_ids == first.test.text_ids[:2]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        gone = load_training_collection(_spec(path), test_ids=[*first.test.text_ids, "gone-1"])
    assert gone.test.text_ids == first.test.text_ids
    message = "1 of the run's 7 test pairs are no longer in the manifest (first: gone-1)"
    assert message in caplog.text


def test_pair_level_validation_split_is_random_not_stratified():
    fit, val = validation_split(np.arange(50), seed=0)
    assert len(val) == 10 and len(set(fit) | set(val)) == 50


def test_broken_rows_are_reported_by_row_and_id_and_skipped(tmp_path, caplog):
    path = write_manifest_collection(tmp_path, split=False, fmt="jsonl")
    write_image(tmp_path.parent / "outside.jpg")
    (tmp_path / "texts" / "empty.txt").write_text("   ", encoding="utf-8")
    broken = [
        {"id": "gone", "text": "a text", "image_path": "images/missing.jpg", "label": "art"},
        {"id": "blank", "text_path": "texts/empty.txt", "image_path": "images/art-0.jpg",
         "label": "art"},
        {"id": "art-1", "text": "again", "image_path": "images/art-1.jpg", "label": "art"},
        {"id": "escape", "text": "x", "image_path": "../outside.jpg", "label": "art"},
        {"id": "lonely", "text": "a text with no photo", "label": "art"},
    ]
    with open(path, "a", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in broken)
    with caplog.at_level(logging.WARNING):
        dataset = load_training_collection(_spec(path))
    assert len(dataset.train) + len(dataset.test) == 24
    kinds = {p.item: p.kind for p in dataset.problems}
    assert kinds["lonely"] == "not_a_pair"
    log = caplog.text
    for row, item, why in [
        (25, "gone", "does not exist"),
        (26, "blank", "is empty"),
        (27, "art-1", "duplicate id"),
        (28, "escape", "points outside the manifest's folder"),
    ]:
        assert f"row {row} (id {item}): " in log and why in log
    assert "lonely" in log and "row 29: not a pair (no image); left out of training" in log


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows[:1] + [{**rows[1], "label": "unique"}] + rows[2:],
         "label 'unique' (row 2) has a single training pair"),
        (lambda rows: [{**r, "split": "train"} for r in rows], "the test split has no pairs"),
        (lambda rows: [{**r, "split": "test"} for r in rows[:20]] + rows[20:],
         "training pairs; at least 10 are needed"),
        (lambda rows: [{k: v for k, v in rows[0].items() if k != "label"}] + rows[1:],
         "1 of 24 pairs have no label (first: row 1, id art-0)"),
        (lambda rows: [{k: v for k, v in rows[0].items() if k != "split"}] + rows[1:],
         "row 1 (id art-0) has no split"),
        (lambda rows: [{k: v for k, v in r.items() if k != "image_path"} for r in rows],
         "no row has both a text and an image"),
    ],
)
def test_collections_that_cannot_be_trained_on_fail_in_one_line(tmp_path, edit, message):
    path = write_manifest_collection(tmp_path, fmt="jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in edit(rows)), encoding="utf-8")
    with pytest.raises(CollectionError) as error:
        load_training_collection(_spec(path))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_label_with_one_pair_is_fine_when_training_on_pairs(tmp_path):
    path = write_manifest_collection(tmp_path, fmt="jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["label"] = "unique"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    dataset = load_training_collection(_spec(path), pairs=True)
    assert "unique" in dataset.categories


def test_a_bad_split_value_is_a_row_problem(tmp_path, caplog):
    path = write_manifest_collection(tmp_path, fmt="jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["split"] = "validation"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        dataset = load_training_collection(_spec(path))
    assert "art-0" not in dataset.train.text_ids + dataset.test.text_ids
    assert "row 1 (id art-0): split 'validation' must be 'train' or 'test'" in caplog.text
