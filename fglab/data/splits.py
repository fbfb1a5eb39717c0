"""The one validation split of a training split: every method that selects anything
(epochs, regularization) selects on it, never on the test split."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

VALIDATION_FRACTION = 0.2


def validation_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded (fit rows, validation rows) of the training split, each sorted."""
    rows = np.arange(len(labels))
    fit_rows, val_rows = train_test_split(
        rows, test_size=VALIDATION_FRACTION, random_state=seed, stratify=labels
    )
    return np.sort(fit_rows), np.sort(val_rows)
