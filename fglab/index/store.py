"""An embedding index: one faiss inner-product index per modality plus each item's metadata.

Faiss holds the vectors under int64 keys (:mod:`fglab.index.vectors`); an :class:`ItemTable`
maps keys to items and keeps counts per modality, so a query costs a faiss search plus a
lookup of its ``k`` hits. On disk (:mod:`fglab.index.disk`) a full save writes a base, and
:meth:`EmbeddingIndex.save_changes` appends what changed since as a small segment.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fglab.hardware import available_memory
from fglab.index import disk
from fglab.index.items import MODALITIES, Item, ItemTable
from fglab.index.state import Changes, Origin
from fglab.index.vectors import (
    HIDE_REMOVED,
    KINDS,
    IndexSettings,
    ModalityIndex,
    make_faiss_index,
    make_pq_index,
)

__all__ = [
    "HIDE_REMOVED",
    "ITEM_ID",
    "KINDS",
    "MODALITIES",
    "EmbeddingIndex",
    "IndexSettings",
    "Item",
    "make_pq_index",
]

ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class EmbeddingIndex:
    """Items of both modalities, searchable by inner product; see the module docstring.

    Loaded with ``vectors=False`` it holds the metadata only: enough to add and remove items
    and :meth:`save_changes`, not to search.
    """

    def __init__(
        self,
        dim: int,
        settings: IndexSettings | None = None,
        info: dict | None = None,
        *,
        items: ItemTable | None = None,
        kinds: dict[str, str] | None = None,
        modalities: dict[str, ModalityIndex] | None = None,
        next_key: int = 0,
        has_vectors: bool = True,
    ):
        """A new empty index, or (the keywords) one a loader assembled from its parts:
        ``kinds`` per modality, their faiss ``modalities`` (without ``has_vectors`` there are
        none) and the next key to hand out."""
        self.dim = dim
        self.settings = settings or IndexSettings()
        self.info: dict = dict(info or {})  # free-form provenance: run, data set, split
        self.items = items if items is not None else ItemTable()
        self.kinds: dict[str, str] = dict(kinds or {})
        self.modalities: dict[str, ModalityIndex] = dict(modalities or {})
        self.has_vectors = has_vectors
        self.next_key = next_key
        self.expected: dict[str, int] = {}  # items a streaming build announced per modality
        self.changes = Changes(start_row=len(self.items.table))  # not yet on disk
        self.origin: Origin | None = None  # the directory and listing it was loaded from

    def attach_vectors(self, modalities: dict[str, ModalityIndex]) -> None:
        """Search through ``modalities`` (e.g. shards served elsewhere) from now on."""
        self.modalities.update(modalities)
        self.has_vectors = True

    def mark_saved(self, path: Path, listing: dict) -> None:
        """Record that this index now matches ``path`` and its ``listing``: no pending changes."""
        self.origin = Origin(Path(path).resolve(), listing)
        self.changes = Changes(start_row=len(self.items.table))

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.items.by_id

    @property
    def by_id(self) -> dict[str, int]:
        return self.items.by_id

    def count(self, modality: str) -> int:
        return self.items.counts.get(modality, 0)

    def expect(self, counts: dict[str, int]) -> None:
        """Announce ``counts`` items per modality about to be added in several calls: a new
        modality's kind and IVF lists are then chosen for all of them, not for its first add
        (which still trains the quantizers, so make it a large one)."""
        for modality, count in counts.items():
            self.expected[modality] = self.expected.get(modality, 0) + count
            if modality not in self.kinds:
                self.kinds[modality] = self.settings.resolved_kind(self.expected[modality],
                                                                   dim=self.dim)

    def add(self, items: list[Item], embeddings: np.ndarray) -> None:
        """Add items of one modality with their (n, dim) embeddings."""
        if not items:
            return
        vectors = self._check_vectors(embeddings, len(items))
        modality = items[0].modality
        for item in items:
            self._check_item(item, modality)
        ids = [item.id for item in items]
        if len(set(ids)) != len(items):
            raise ValueError("duplicate item ids in one add")
        present = self.items.keys_of_ids(ids)
        if present:
            raise ValueError(f"item id {next(iter(present))!r} is already in the index")
        if modality not in self.kinds:
            self.kinds[modality] = self.settings.resolved_kind(len(items), dim=self.dim)
        keys = np.arange(self.next_key, self.next_key + len(items), dtype=np.int64)
        self.add_vectors(modality, keys, vectors)
        self.items.append(keys, items)
        if self.origin is not None:  # a new index is saved whole: no copy of its vectors
            self.changes.add(modality, keys, vectors)
        self.next_key += len(items)

    def add_vectors(self, modality: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Put vectors into the modality's faiss index (made and trained on the first ones)."""
        if not self.has_vectors:
            return
        if modality not in self.modalities:
            kind = self.kinds[modality]
            index = make_faiss_index(self.dim, kind, self.settings, vectors,
                                     self.expected.get(modality))
            self.modalities[modality] = ModalityIndex(index, kind)
        self.modalities[modality].add(vectors, keys)

    def remove(self, item_ids: list[str]) -> None:
        """Remove items by id; an unknown id is a KeyError naming it, an id given twice a
        ValueError (nothing is removed)."""
        item_ids, seen = list(item_ids), set()
        for item_id in item_ids:
            if item_id in seen:
                raise ValueError(f"item id {item_id!r} is given twice; nothing removed")
            seen.add(item_id)
        found = self.items.keys_of_ids(item_ids)
        unknown = [item_id for item_id in item_ids if item_id not in found]
        if unknown:
            raise KeyError(f"no item with id {unknown[0]!r} in the index")
        keys = sorted(set(found.values()))
        self.remove_keys(np.asarray(keys, dtype=np.int64))
        self.changes.removed.extend(keys)

    def remove_keys(self, keys: np.ndarray) -> None:
        modalities = [item.modality for item in self.items.items_at(keys)]
        self.items.kill(keys)
        if not self.has_vectors:
            return
        for modality in set(modalities):
            chosen = [int(k) for k, m in zip(keys, modalities, strict=True) if m == modality]
            self.modalities[modality].remove(chosen)

    def search(self, queries: np.ndarray, modality: str, k: int) -> list[list[tuple[Item, float]]]:
        """The top ``k`` items of ``modality`` for each query row, best first."""
        if not self.has_vectors:
            raise RuntimeError("this index was loaded without its vectors; load it to search")
        vectors = self._check_vectors(queries, None)
        if modality not in self.modalities or k <= 0 or self.count(modality) == 0:
            return [[] for _ in range(len(vectors))]
        k = min(k, self.count(modality))
        scores, keys = self.modalities[modality].search(vectors, k)
        results = []
        for row_keys, row_scores in zip(keys, scores, strict=True):
            found = row_keys >= 0
            items = self.items.items_at(row_keys[found])
            results.append(list(zip(items, row_scores[found].tolist(), strict=True)))
        return results

    def prefetch(self, budget: int | None = None) -> list[str]:
        """Have the OS cache the vectors a search reads from disk (``ivfpq``'s re-ranking)
        while they fit ``budget`` bytes (default: half the memory now available). Returns
        the modalities whose vectors were read."""
        budget = budget if budget is not None else available_memory() // 2
        return [name for name, modality in self.modalities.items()
                if hasattr(modality.faiss_index, "prefetch")
                and modality.faiss_index.prefetch(budget)]

    def get(self, item_id: str) -> Item:
        key = self.items.by_id.get(item_id)
        if key is None:
            raise KeyError(f"no item with id {item_id!r} in the index")
        return self.items.items_at([key])[0]

    # -- on disk ---------------------------------------------------------------------------

    def save(self, path: Path, write_extra: Callable[[Path], None] | None = None) -> None:
        """Write the whole index directory atomically; ``write_extra(tmp_dir)`` adds files
        (a model). Files an index loaded from ``path`` carried (its model) are kept."""
        disk.save_full(self, Path(path), write_extra)

    def save_changes(self, path: Path) -> None:
        """Commit adds and removals since loading ``path`` (or the last commit) as a new
        segment, leaving every existing file untouched; now and then the segments are merged
        into a new base by a full rewrite."""
        disk.save_changes(self, Path(path))

    @classmethod
    def load(cls, path: Path, vectors: bool = True) -> EmbeddingIndex:
        """Load a directory written by :meth:`save` (a partial one raises IncompleteIndexError);
        ``vectors=False`` reads the item metadata only."""
        return disk.load(cls, Path(path), vectors)

    # -- checks ----------------------------------------------------------------------------

    def _check_vectors(self, embeddings: np.ndarray, rows: int | None) -> np.ndarray:
        vectors = np.ascontiguousarray(np.atleast_2d(embeddings), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"embeddings must be (n, {self.dim}), got shape {vectors.shape}")
        if rows is not None and len(vectors) != rows:
            raise ValueError(f"{len(vectors)} embeddings for {rows} items")
        if not np.isfinite(vectors).all():
            raise ValueError("embeddings contain NaN or infinite values")
        return vectors

    def _check_item(self, item: Item, modality: str) -> None:
        if item.modality not in MODALITIES or item.modality != modality:
            raise ValueError(f"item {item.id!r}: modality {item.modality!r}, expected {modality}")
        if not ITEM_ID.match(item.id):
            raise ValueError(f"item id {item.id!r} must match {ITEM_ID.pattern}")
