"""What the on-disk formats (:mod:`~fglab.index.disk`, :mod:`~fglab.index.shards`) read and
write of an index: its pending changes, where it came from, and the shape of the object
(:class:`IndexState`, which :class:`fglab.index.store.EmbeddingIndex` is), so that the formats
never import the class that uses them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from fglab.index.items import Item, ItemTable
from fglab.index.refined import VectorStore
from fglab.index.vectors import IndexSettings, ModalityIndex


@dataclass
class Changes:
    """Adds and removals not yet on disk: item rows from ``start_row`` on, their vectors by
    modality (keyed, in key order; spilled to temporary files past a few hundred MB, so a
    large ``index-add`` holds a bounded part of them), and removed keys."""

    start_row: int = 0
    added: dict[str, VectorStore] = field(default_factory=dict)
    removed: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)

    def add(self, modality: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.added.setdefault(modality, VectorStore(vectors.shape[1])).append(keys, vectors)

    def rows(self) -> int:
        return sum(len(store) for store in self.added.values()) + len(self.removed)


@dataclass
class Origin:
    """The directory an index was loaded from (or last saved to) and its listing then."""

    path: Path
    listing: dict


class IndexState(Protocol):
    """An index as the formats see it (constructed with the keywords of
    :class:`~fglab.index.store.EmbeddingIndex`)."""

    dim: int
    settings: IndexSettings
    info: dict
    items: ItemTable
    kinds: dict[str, str]
    modalities: dict[str, ModalityIndex]
    has_vectors: bool
    next_key: int
    changes: Changes
    origin: Origin | None

    def __init__(self, dim: int, settings: IndexSettings | None = None,
                 info: dict | None = None, **parts) -> None: ...

    def count(self, modality: str) -> int: ...

    def get(self, item_id: str) -> Item: ...

    def add_vectors(self, modality: str, keys: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove_keys(self, keys: np.ndarray) -> None: ...

    def attach_vectors(self, modalities: dict[str, ModalityIndex]) -> None: ...

    def mark_saved(self, path: Path, listing: dict) -> None: ...
