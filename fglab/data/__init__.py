"""Data sets: loaders, documents, problems and the data root."""

from __future__ import annotations

from fglab.data.dataset import CrossModalDataset, Split
from fglab.data.problems import Problem
from fglab.data.wikipedia import load_dataset

__all__ = ["CrossModalDataset", "Problem", "Split", "load_dataset"]
