"""The generic containers: a split's rows stay aligned when subset; a data set names its
splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fglab.data import CrossModalDataset as Exported
from fglab.data.dataset import CrossModalDataset, Split
from fglab.data.wikipedia import CrossModalDataset as FromWikipedia


def _split() -> Split:
    n = 4
    return Split(
        "train", [f"t{i}" for i in range(n)], [f"i{i}" for i in range(n)],
        np.arange(n, dtype=np.int64), [f"text {i}" for i in range(n)], [""] * n,
        [Path(f"i{i}.jpg") for i in range(n)], {"image:sift": np.eye(n)},
    )


def test_subset_keeps_every_column_aligned():
    part = _split().subset([2, 0], name="validation")
    assert part.name == "validation" and len(part) == 2
    assert part.text_ids == ["t2", "t0"] and part.image_ids == ["i2", "i0"]
    assert part.labels.tolist() == [2, 0] and part.texts == ["text 2", "text 0"]
    assert part.image_paths == [Path("i2.jpg"), Path("i0.jpg")]
    assert part.shipped["image:sift"].tolist() == [[0, 0, 1, 0], [1, 0, 0, 0]]


def test_a_data_set_gives_its_splits_by_name_only():
    train, test = _split(), _split().subset([1], name="test")
    dataset = CrossModalDataset("x", Path("."), "en", [], train, test, [], frozenset(), False)
    assert dataset.split("train") is train and dataset.split("test") is test
    with pytest.raises(ValueError, match="'train' or 'test'"):
        dataset.split("validation")


def test_the_old_import_paths_still_name_the_same_class():
    assert Exported is FromWikipedia is CrossModalDataset
