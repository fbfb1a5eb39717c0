"""Any collection fglab reads: :func:`load_collection` loads a source as it is (a data set,
or a :class:`Manifest`); :func:`load_training_collection` makes either one
:class:`CrossModalDataset` with train and test splits.

A manifest's rows with both a text and an image are its pairs. With a ``label`` on every
pair, the labels are its categories; without labels a pair's only match is its own partner
(pair level: each pair is its own class, and category MAP is not reported). Without a
``split`` column the pairs are split 80/20 by a seeded (stratified when labeled) split,
which a run records.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from fglab.data.dataset import CrossModalDataset, Split
from fglab.data.language import detect_language
from fglab.data.manifest import (
    Manifest,
    ManifestItem,
    StreamedManifest,
    load_manifest,
    stream_manifest,
)
from fglab.data.problems import Problem, printable
from fglab.data.sources import CollectionSource, ManifestSource, as_source, parse_source
from fglab.data.wikipedia import load_dataset

logger = logging.getLogger(__name__)
TEST_FRACTION = 0.2
#: Fewest training pairs a manifest may have: the validation part and the fitting part of
#: the training pairs both need several pairs.
MIN_TRAIN_PAIRS = 10


class CollectionError(ValueError):
    """A collection that cannot be trained on; the message names why, before any training."""


def load_collection(
    source: str | CollectionSource,
    data_root: str | os.PathLike[str] | None = None,
    log_problems_found: bool = True,
    streamed: bool = False,
    progress: Callable[[int], object] | None = None,
) -> CrossModalDataset | Manifest | StreamedManifest:
    """A data set source -> its loaded data set (``log_problems_found``: as
    :func:`load_dataset`); a manifest source -> its :class:`Manifest`, as read, or, with
    ``streamed``, its :class:`StreamedManifest` (checked, its rows not held; ``progress(n)``
    told of the rows checked). A string is parsed with :func:`parse_source` first."""
    source = as_source(source)
    if isinstance(source, ManifestSource):
        return stream_manifest(source, progress) if streamed else load_manifest(source)
    return load_dataset(source.name, data_root, log_problems_found)


def load_training_collection(
    source: str | CollectionSource,
    data_root: str | os.PathLike[str] | None = None,
    split_seed: int = 0,
    test_ids: list[str] | None = None,
    pairs: bool = False,
) -> CrossModalDataset:
    """A data set or manifest source -> a data set with train and test splits.

    ``test_ids`` (the split a run recorded) overrides the manifest's own split; ``pairs``:
    labels will not be trained on (no label needs two pairs, the split is not stratified)."""
    collection = load_collection(source, data_root)
    if isinstance(collection, Manifest):
        return manifest_dataset(collection, split_seed, test_ids, pairs)
    return collection


def is_labeled(dataset: CrossModalDataset) -> bool:
    """False for a collection without categories (pair level)."""
    return bool(dataset.categories)


def manifest_dataset(
    manifest: Manifest,
    split_seed: int = 0,
    test_ids: list[str] | None = None,
    pairs_only: bool = False,
) -> CrossModalDataset:
    """The manifest's pairs, split as its ``split`` column, ``test_ids`` or a seeded split says."""
    name = ManifestSource(manifest.path.resolve()).spec
    pairs: list[ManifestItem] = []
    not_pairs: list[Problem] = []
    for item in manifest.items:
        if item.text and item.image_path is not None:
            pairs.append(item)
        else:
            missing = "image" if item.image_path is None else "text"
            detail = f"row {item.row}: not a pair (no {missing}); left out of training"
            not_pairs.append(Problem("not_a_pair", "manifest", item.id, detail))
    for problem in not_pairs:  # the manifest's own problems were logged as it was read
        logger.warning("%s: %s", printable(manifest.path.name), problem)
    unreadable = [Problem("bad_row", "manifest", f"row {p.row}", str(p)) for p in manifest.problems]
    problems = unreadable + not_pairs
    shown = printable(name, None)  # the name as messages show it
    if not pairs:
        raise CollectionError(f"{shown}: no row has both a text and an image to train on")
    categories = _categories(shown, pairs)
    stratify = bool(categories) and not pairs_only
    test_rows = _test_rows(shown, pairs, stratify, split_seed, test_ids)
    held_out = set(test_rows)
    train_rows = [i for i in range(len(pairs)) if i not in held_out]
    if len(train_rows) < MIN_TRAIN_PAIRS:
        raise CollectionError(
            f"{shown}: {len(train_rows)} training pairs; at least {MIN_TRAIN_PAIRS} are needed"
        )
    if not test_rows:
        raise CollectionError(f"{shown}: the test split has no pairs")
    if stratify:
        _check_classes(shown, [pairs[i] for i in train_rows])
    label_of = {c: k for k, c in enumerate(categories)}
    splits = {
        split: _split(split, [pairs[i] for i in rows], label_of)
        for split, rows in (("train", train_rows), ("test", test_rows))
    }
    return CrossModalDataset(
        name=name,
        path=manifest.root,
        language=detect_language(splits["train"].texts[:200]),
        categories=categories,
        train=splits["train"],
        test=splits["test"],
        problems=problems,
        stopwords=frozenset(),
        has_images=True,
    )


def _categories(name: str, pairs: list[ManifestItem]) -> list[str]:
    """The sorted labels when every pair has one; [] when none has; an error otherwise.
    ``name`` (here and below): the collection as messages show it."""
    labeled = [p for p in pairs if p.label]
    if not labeled:
        return []
    if len(labeled) < len(pairs):
        first = next(p for p in pairs if not p.label)
        raise CollectionError(
            f"{name}: {len(pairs) - len(labeled)} of {len(pairs)} pairs have no label (first: "
            f"row {first.row}, id {printable(first.id)}); label every pair, or none to train on "
            "pairs"
        )
    return sorted({p.label for p in labeled})


def _test_rows(
    name: str,
    pairs: list[ManifestItem],
    stratified: bool,
    seed: int,
    test_ids: list[str] | None,
) -> list[int]:
    if test_ids is not None:  # the split a run recorded
        wanted = set(test_ids)
        rows = [i for i, p in enumerate(pairs) if p.id in wanted]
        if len(rows) < len(wanted):
            missing = sorted(wanted - {pairs[i].id for i in rows})
            logger.warning(
                "%s: %d of the run's %d test pairs are no longer in the manifest (first: %s); "
                "scoring the %d that are", name, len(missing), len(wanted), printable(missing[0]),
                len(rows),
            )
        return rows
    given = [p.split for p in pairs]
    if any(given):
        if not all(given):
            first = next(p for p in pairs if not p.split)
            raise CollectionError(
                f"{name}: row {first.row} (id {printable(first.id)}) has no split; give 'train' or "
                "'test' on every pair, or on none for a seeded 80/20 split"
            )
        return [i for i, split in enumerate(given) if split == "test"]
    if stratified:
        _check_classes(name, pairs)
    rows = np.arange(len(pairs))
    stratify = [p.label for p in pairs] if stratified else None
    _, test = train_test_split(
        rows, test_size=TEST_FRACTION, random_state=seed, stratify=stratify
    )
    logger.warning(
        "%s has no split column: a seeded %d/%d split (seed %d%s) holds out %d of %d pairs "
        "for testing; the run records it",
        name, round(100 * (1 - TEST_FRACTION)), round(100 * TEST_FRACTION), seed,
        ", stratified by label" if stratified else "", len(test), len(pairs),
    )
    return sorted(int(i) for i in test)


def _check_classes(name: str, pairs: list[ManifestItem]) -> None:
    """Every label needs two pairs: one can be held out for validation, one learned from."""
    counts = Counter(p.label for p in pairs)
    single = sorted(label for label, count in counts.items() if count < 2)
    if single:
        row = next(p.row for p in pairs if p.label == single[0])
        raise CollectionError(
            f"{name}: label '{printable(single[0])}' (row {row}) has a single training pair"
            + (f", as do {len(single) - 1} more" if len(single) > 1 else "")
            + "; give each label two or more, or train on pairs (--pairs)"
        )


def _split(name: str, pairs: list[ManifestItem], label_of: dict[str, int]) -> Split:
    labels = (
        np.array([label_of[p.label] for p in pairs], dtype=np.int64)
        if label_of
        else pair_labels(len(pairs))
    )
    ids = [p.id for p in pairs]
    return Split(
        name=name,
        text_ids=ids,
        image_ids=list(ids),
        labels=labels,
        texts=[p.text or "" for p in pairs],
        titles=["" for _ in pairs],
        image_paths=[p.image_path for p in pairs],
    )


def pair_labels(n: int) -> np.ndarray:
    """Labels that make each of ``n`` pairs its own class: only the exact partner matches."""
    return np.arange(n, dtype=np.int64)


def manifest_path(dataset: CrossModalDataset) -> Path | None:
    """The manifest a data set was read from, or None for a data set folder."""
    source = parse_source(dataset.name)
    return source.path if isinstance(source, ManifestSource) else None
