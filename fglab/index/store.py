"""An embedding index: one faiss inner-product index per modality plus each item's metadata.

Faiss holds the vectors under int64 ids (``IndexIDMap2``, or IVF's own ids), so items are
added and removed without a rebuild; the metadata (:class:`Item`) maps those ids to item ids,
categories, titles, texts and image paths. HNSW and PQ cannot delete vectors: removed HNSW
ids are excluded at search time with a faiss ``IDSelector``, removed PQ ids by fetching that
many more results and dropping them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np

from fglab.index.atomic import atomic_directory, verify_directory, write_listing

logger = logging.getLogger(__name__)

MODALITIES = ("image", "text")
KINDS = ("auto", "flat", "ivf", "hnsw", "pq")
#: Kinds whose faiss index cannot remove vectors: removed ids are hidden at search time.
HIDE_REMOVED = ("hnsw", "pq")
#: The fewest vectors a PQ index trains its 16 centroids per sub-quantizer on.
PQ_MIN_TRAIN = 128
#: Above this many items in one modality, ``kind="auto"`` picks PQ over exact search: it needs
#: no structure in the vectors to reach its recall (IVF and HNSW do), builds 1M vectors in
#: seconds, and answers in milliseconds (``benchmarks/index_search.py``).
AUTO_APPROXIMATE_FROM = 200_000
ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
ITEMS_FILE = "items.jsonl"


@dataclass
class Item:
    """What an index knows about one item besides its vector."""

    id: str
    modality: str  # "image" or "text"
    pair_id: str  # the id of the pair (or manifest row) it comes from
    category: str | None = None
    title: str = ""
    text: str = ""  # the item's text, or the text paired with an image
    image_path: str | None = None  # relative to the index's collection root
    source: str = ""  # e.g. "eng-wiki:test" or "manifest:photos.csv"

    def snippet(self, length: int = 240) -> str:
        words = " ".join(self.text.split())
        return words if len(words) <= length else words[: length - 1].rstrip() + "\u2026"


@dataclass
class IndexSettings:
    """How the faiss indexes are built and searched."""

    kind: str = "auto"
    nlist: int | None = None  # IVF lists; default ~4 sqrt(n)
    nprobe: int = 32
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    pq_k_factor: int = 32  # PQ: re-rank this many x k fast-scan candidates exactly

    def resolved_kind(self, n: int) -> str:
        if self.kind not in KINDS:
            raise ValueError(f"index kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "auto":
            return "pq" if n > AUTO_APPROXIMATE_FROM else "flat"
        return self.kind


def make_faiss_index(dim: int, kind: str, settings: IndexSettings, train: np.ndarray):
    """An empty index of ``kind`` for inner products, keyed by int64 ids (IVF natively, the
    others through ``IndexIDMap2``); IVF is trained on ``train``."""
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = settings.ef_construction
        inner.hnsw.efSearch = settings.ef_search
    elif kind == "ivf":
        nlist = settings.nlist or max(1, min(int(4 * np.sqrt(len(train))), len(train) // 39))
        inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        inner.train(np.ascontiguousarray(train, dtype=np.float32))
        inner.nprobe = min(settings.nprobe, nlist)
        # IVF keeps ids itself and removes by id; an IndexIDMap over it would renumber wrongly.
        return inner
    elif kind == "pq":
        inner = make_pq_index(dim, settings.pq_k_factor, train)
    else:
        raise ValueError(f"index kind must be one of {', '.join(KINDS[1:])}, got {kind!r}")
    return faiss.IndexIDMap2(inner)


def make_pq_index(dim: int, k_factor: int, train: np.ndarray):
    """4-bit codes of two dimensions each, scanned with SIMD lookups (faiss "fast scan"), then
    the best ``k_factor`` x k candidates re-ranked by their exact inner products; trained on
    ``train``."""
    if dim % 2 or len(train) < PQ_MIN_TRAIN:
        raise ValueError(
            f"a pq index needs an even dimension and >= {PQ_MIN_TRAIN} vectors to train; "
            f"got dimension {dim} and {len(train)} vectors (use kind flat)"
        )
    index = faiss.IndexRefineFlat(
        faiss.IndexPQFastScan(dim, dim // 2, 4, faiss.METRIC_INNER_PRODUCT)
    )
    index.k_factor = k_factor
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    return index


@dataclass
class ModalityIndex:
    """The faiss index of one modality and the int64 ids it holds."""

    faiss_index: object
    kind: str
    deleted: set[int] = field(default_factory=set)  # HNSW / PQ ids hidden at search time

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids of the top ``k``, best first (id -1 where fewer exist)."""
        params = None
        if self.deleted and self.kind == "pq":
            fetch = min(k + len(self.deleted), self.faiss_index.ntotal)
            scores, ids = self.faiss_index.search(queries, fetch)
            keep = ~np.isin(ids, np.fromiter(self.deleted, dtype=np.int64))
            order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept ones first, in order
            ids = np.where(keep, ids, -1)
            return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
        if self.deleted:
            selector = faiss.IDSelectorNot(
                faiss.IDSelectorBatch(np.fromiter(self.deleted, dtype=np.int64))
            )
            params = faiss.SearchParametersHNSW(sel=selector)
            params.efSearch = max(k, faiss.downcast_index(self.faiss_index.index).hnsw.efSearch)
        return self.faiss_index.search(queries, k, params=params)


class EmbeddingIndex:
    """Items of both modalities, searchable by inner product; see the module docstring."""

    def __init__(self, dim: int, settings: IndexSettings | None = None, info: dict | None = None):
        self.dim = dim
        self.settings = settings or IndexSettings()
        self.info: dict = dict(info or {})  # free-form provenance: run, data set, split
        self.items: dict[int, Item] = {}
        self.by_id: dict[str, int] = {}
        self.modalities: dict[str, ModalityIndex] = {}
        self.next_key = 0

    def __len__(self) -> int:
        return len(self.items)

    def count(self, modality: str) -> int:
        return sum(1 for item in self.items.values() if item.modality == modality)

    def add(self, items: list[Item], embeddings: np.ndarray) -> None:
        """Add items of one modality with their (n, dim) embeddings."""
        if not items:
            return
        vectors = self._check_vectors(embeddings, len(items))
        modality = items[0].modality
        for item in items:
            self._check_item(item, modality)
        if len({item.id for item in items}) != len(items):
            raise ValueError("duplicate item ids in one add")
        if modality not in self.modalities:
            kind = self.settings.resolved_kind(len(items))
            index = make_faiss_index(self.dim, kind, self.settings, vectors)
            self.modalities[modality] = ModalityIndex(index, kind)
        keys = np.arange(self.next_key, self.next_key + len(items), dtype=np.int64)
        self.modalities[modality].faiss_index.add_with_ids(vectors, keys)
        for key, item in zip(keys.tolist(), items, strict=True):
            self.items[key] = item
            self.by_id[item.id] = key
        self.next_key += len(items)

    def remove(self, item_ids: list[str]) -> None:
        """Remove items by id; an unknown id is a KeyError naming it (nothing is removed)."""
        unknown = [item_id for item_id in item_ids if item_id not in self.by_id]
        if unknown:
            raise KeyError(f"no item with id {unknown[0]!r} in the index")
        for item_id in item_ids:
            key = self.by_id.pop(item_id)
            item = self.items.pop(key)
            modality = self.modalities[item.modality]
            if modality.kind in HIDE_REMOVED:
                modality.deleted.add(key)
            else:
                modality.faiss_index.remove_ids(np.array([key], dtype=np.int64))

    def search(self, queries: np.ndarray, modality: str, k: int) -> list[list[tuple[Item, float]]]:
        """The top ``k`` items of ``modality`` for each query row, best first."""
        vectors = self._check_vectors(queries, None)
        if modality not in self.modalities or k <= 0:
            return [[] for _ in range(len(vectors))]
        k = min(k, self.count(modality))
        scores, keys = self.modalities[modality].search(vectors, k)
        return [
            [
                (self.items[key], float(s))
                for key, s in zip(row_keys, row_scores, strict=True)
                if key >= 0 and key in self.items
            ]
            for row_keys, row_scores in zip(keys.tolist(), scores.tolist(), strict=True)
        ]

    def get(self, item_id: str) -> Item:
        if item_id not in self.by_id:
            raise KeyError(f"no item with id {item_id!r} in the index")
        return self.items[self.by_id[item_id]]

    def save(self, path: Path, write_extra: Callable[[Path], None] | None = None) -> None:
        """Write the index directory atomically; ``write_extra(tmp_dir)`` adds files (a model)."""
        with atomic_directory(Path(path)) as tmp:
            for modality, index in self.modalities.items():
                faiss.write_index(index.faiss_index, str(tmp / f"{modality}.faiss"))
            with open(tmp / ITEMS_FILE, "w", encoding="utf-8") as handle:
                for key, item in self.items.items():
                    handle.write(json.dumps({"key": key, **asdict(item)}, ensure_ascii=False))
                    handle.write("\n")
            if write_extra is not None:
                write_extra(tmp)
            write_listing(tmp, self._listing_info())

    def _listing_info(self) -> dict:
        return {
            "dim": self.dim,
            "next_key": self.next_key,
            "settings": asdict(self.settings),
            "modalities": {
                name: {"kind": m.kind, "deleted": sorted(m.deleted), "items": self.count(name)}
                for name, m in self.modalities.items()
            },
            "info": self.info,
        }

    @classmethod
    def load(cls, path: Path) -> EmbeddingIndex:
        """Load a directory written by :meth:`save`; a partial one raises IncompleteIndexError."""
        path = Path(path)
        listing = verify_directory(path)
        index = cls(listing["dim"], IndexSettings(**listing["settings"]), listing.get("info"))
        index.next_key = listing["next_key"]
        for name, meta in listing["modalities"].items():
            faiss_index = faiss.read_index(str(path / f"{name}.faiss"))
            index.modalities[name] = ModalityIndex(faiss_index, meta["kind"], set(meta["deleted"]))
        with open(path / ITEMS_FILE, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                key = record.pop("key")
                index.items[key] = Item(**record)
                index.by_id[record["id"]] = key
        return index

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
        if item.id in self.by_id:
            raise ValueError(f"item id {item.id!r} is already in the index")
