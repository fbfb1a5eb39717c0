"""The one validation split of a training split: every method that selects anything
(epochs, regularization) selects on it, never on the test split."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

VALIDATION_FRACTION = 0.2


def validation_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit rows, validation rows) of the training split, each sorted: stratified by
    category, or at random at pair level (every label once: each pair its own class). The
    validation part is a fifth of the rows, at most VALIDATION_BOUND: beyond that selection
    scores no more pairs, and the rest are better spent on fitting."""
    rows = np.arange(len(labels))
    capped = len(rows) * VALIDATION_FRACTION > VALIDATION_BOUND
    fit_rows, val_rows = train_test_split(
        rows, test_size=VALIDATION_BOUND if capped else VALIDATION_FRACTION, random_state=seed,
        stratify=None if is_pair_level(labels) else labels,
    )
    return np.sort(fit_rows), np.sort(val_rows)


def is_pair_level(labels: np.ndarray) -> bool:
    """True when every label occurs once: each pair is its own class (no categories)."""
    return len(np.unique(labels)) == len(labels)


#: Validation pairs that model selection scores at most (a seeded sample beyond), and
#: training texts the teacher's text->text validation ranks at most: selection's time and
#: memory do not grow with the collection.
VALIDATION_BOUND = 2000
GALLERY_BOUND = 20000
#: Training texts the siamese teacher learns from at most (a seeded, stratified sample
#: beyond); it then grades every text. A text-text similarity of categories is learned long
#: before 20,000 texts, and its cost would otherwise grow with the collection.
TEACHER_BOUND = 20000


def bounded_sample(labels: np.ndarray, bound: int, seed: int) -> np.ndarray:
    """Sorted rows of at most ``bound`` of ``labels``: all of them up to ``bound``, else a
    seeded sample, stratified by category where every category can keep a row."""
    rows = np.arange(len(labels))
    if len(labels) <= bound:
        return rows
    stratify = None
    if not is_pair_level(labels) and len(np.unique(labels)) <= bound:
        _, counts = np.unique(labels, return_counts=True)
        stratify = labels if counts.min() >= 2 else None
    kept, _ = train_test_split(rows, train_size=bound, random_state=seed, stratify=stratify)
    return np.sort(kept)
