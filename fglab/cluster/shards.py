"""Sharded index directories: the items split over shards, each with its own faiss indexes.

    index.json                 the listing (as for any index) plus ``shards``: each shard's
                               folder and item counts; every file's size and SHA-256
    shards/000/embeddings.parquet   the shard's items (key, id, modality, ...) and ``vector``
    shards/000/image.faiss, text.faiss   its faiss indexes (one per modality of the index)
    model/ ...                 the trained run, as in an unsharded index

An item goes to shard ``crc32(id) % N``; keys are global and handed out in the order the
embedded path uses, so a sharded index holds the same keys and vectors as an unsharded one
built from the same collection. A kind that trains (ivf, pq) is trained once on all vectors
of a modality and each shard starts from a copy of that trained, empty index. A query asks
every shard for its top k and :func:`merge_top_k` keeps the best k (ties: lower key first);
with an exact kind that is exactly the top k of one flat index over all items.

The embedded loader reads a sharded directory through :func:`load_sharded` (called by
:func:`fglab.index.disk.load`). Changes go through :func:`add_to_sharded`, which rewrites the
shards that receive items and links the others into a new directory, published atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fglab.index.atomic import LISTING, IncompleteIndexError, atomic_directory, write_listing
from fglab.index.build import Manifest, check_image_search, dataset_pair, manifest_item
from fglab.index.items import SCHEMA, Item, ItemTable
from fglab.index.store import EmbeddingIndex, IndexSettings
from fglab.index.vectors import ModalityIndex, make_faiss_index

if TYPE_CHECKING:
    from fglab.cluster.backend import Backend

logger = logging.getLogger(__name__)

SHARDS = "shards"
EMBEDDINGS = "embeddings.parquet"
MODEL_DIR = "model"


def shard_of(item_id: str, shards: int) -> int:
    """The shard an item belongs to: stable across runs, machines and Python versions."""
    return zlib.crc32(item_id.encode("utf-8")) % shards


def shard_dir(number: int) -> str:
    return f"{SHARDS}/{number:03d}"


def is_sharded(index_dir: Path) -> bool:
    """Whether ``index_dir`` holds a sharded index (False for an unreadable listing too)."""
    try:
        listing = json.loads((Path(index_dir) / LISTING).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(listing, dict) and bool(listing.get("shards"))


# -- search ----------------------------------------------------------------------------------


class ShardPart(Protocol):
    """One shard's vectors of one modality: ``submit(queries, k)`` starts a search and returns
    a function that waits for its (scores, ids), as faiss returns them."""

    def submit(self, queries: np.ndarray, k: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        ...


class LocalShard:
    """A faiss index in this process."""

    def __init__(self, faiss_index):
        self.faiss_index = faiss_index

    @property
    def ntotal(self) -> int:
        return self.faiss_index.ntotal

    def submit(self, queries: np.ndarray, k: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        result = self.faiss_index.search(queries, min(k, max(1, self.faiss_index.ntotal)))
        return lambda: result


def merge_top_k(
    results: Iterable[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of several shards' (scores, ids), per query row: higher score first,
    lower id first among equal scores; id -1 (and score -inf) where fewer exist."""
    results = list(results)
    scores = np.hstack([np.asarray(s, dtype=np.float32) for s, _ in results])
    ids = np.hstack([np.asarray(i, dtype=np.int64) for _, i in results])
    scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
    out_scores = np.full((len(scores), k), -np.inf, dtype=np.float32)
    out_ids = np.full((len(scores), k), -1, dtype=np.int64)
    for row in range(len(scores)):
        order = np.lexsort((ids[row], -scores[row]))
        order = order[ids[row][order] >= 0][:k]
        out_scores[row, : len(order)] = scores[row][order]
        out_ids[row, : len(order)] = ids[row][order]
    return out_scores, out_ids


class ShardedVectors:
    """Stands where a faiss index stands in :class:`ModalityIndex`: searches every shard
    (all started before any is awaited) and merges their top k."""

    def __init__(self, parts: list[ShardPart], count: int):
        self.parts = parts
        self.ntotal = count

    def search(self, queries: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        waits = [part.submit(queries, k) for part in self.parts]
        return merge_top_k((wait() for wait in waits), k)

    def add_with_ids(self, vectors, keys) -> None:
        raise ValueError("a sharded index is changed with `fglab index-add`, not in place")

    def remove_ids(self, keys) -> None:
        raise ValueError("items cannot be removed from a sharded index; build it again")


# -- the collection as rows ------------------------------------------------------------------


def collection_rows(pipeline, collection, split_names: list[str]) -> tuple[list[dict], list[str]]:
    """One row per item to embed (see :mod:`fglab.cluster.embed`), in the order the embedded
    path gives keys (a data set: images then texts; a manifest: texts then images), each with
    its :class:`Item` under ``"item"``; and the collection's problems."""
    if isinstance(collection, Manifest):
        source = f"manifest:{collection.path.name}"
        texts = [m for m in collection.items if m.text]
        images = [m for m in collection.items if m.image_path is not None]
        if images:
            check_image_search(pipeline)
        rows = [
            _row(manifest_item(m, "text", source, collection.root), "text", m.text)
            for m in texts
        ] + [
            _row(manifest_item(m, "image", source, collection.root), "image-file",
                 str(m.image_path), skip=True)
            for m in images
        ]
        return rows, [str(p) for p in collection.problems]
    images, texts, skipped = [], [], []
    for split_name in split_names:
        split = collection.split(split_name)
        source = f"{collection.name}:{split_name}"
        shipped_image = split.shipped.get(pipeline.image_view)
        shipped_text = split.shipped.get(pipeline.text_view) if pipeline.text_features is None \
            else None
        for row in range(len(split)):
            image, text = dataset_pair(collection, split, row, source)
            for item in (image, text):
                if item is None:
                    skipped.append(f"{source} row {row}: id is not usable")
            if image is not None:
                if shipped_image is not None:
                    images.append(_row(image, "image-features", "", _dense(shipped_image, row)))
                else:
                    path = split.image_paths[row]
                    images.append(_row(image, "image-file", str(path) if path else ""))
            if text is not None:
                if shipped_text is not None:
                    texts.append(_row(text, "text-features", "", _dense(shipped_text, row)))
                else:
                    texts.append(_row(text, "text", split.texts[row]))
    return images + texts, skipped


def _row(item: Item, kind: str, value: str, features=None, skip: bool = False) -> dict:
    return {"item": item, "kind": kind, "value": value or "", "features": features or [],
            "skip_failed": skip}


def _dense(matrix, row: int) -> list[float]:
    values = matrix[row]
    values = values.toarray()[0] if hasattr(values, "toarray") else np.asarray(values)
    return np.asarray(values, dtype=np.float64).ravel().tolist()


def embed_rows(
    backend: Backend, run_dir: Path, rows: list[dict], progress=None
) -> tuple[list[Item], np.ndarray, list[str]]:
    """Embed rows on ``backend``: the kept items (in row order), their vectors, and what was
    skipped (manifest images that could not be read) or embedded from zeros (data set images
    that could not be read, as the embedded path does)."""
    wire = [
        {"row": i, "kind": r["kind"], "value": r["value"], "features": r["features"]}
        for i, r in enumerate(rows)
    ]
    vectors: np.ndarray | None = None
    errors: dict[int, str] = {}
    for numbers, batch, failed in backend.embed(run_dir, wire, progress):
        batch = np.asarray(batch, dtype=np.float32)
        if vectors is None:
            vectors = np.zeros((len(rows), batch.shape[1]), dtype=np.float32)
        vectors[numbers] = batch
        errors.update({int(n): e for n, e in zip(numbers, failed, strict=True) if e})
    if vectors is None:
        raise ValueError("nothing to index")
    keep = np.ones(len(rows), dtype=bool)
    skipped = []
    for number, reason in sorted(errors.items()):
        item = rows[number]["item"]
        if rows[number]["skip_failed"]:
            keep[number] = False
            skipped.append(f"{item.source} (id {item.pair_id}): image unreadable ({reason})")
        else:
            logger.warning("%s image %s: %s (embedded from zero features)", item.source,
                           item.pair_id, reason)
    items = [r["item"] for r, kept in zip(rows, keep, strict=True) if kept]
    return items, vectors[keep], skipped


# -- writing ---------------------------------------------------------------------------------


def _table(keys: np.ndarray, items: list[Item], vectors: np.ndarray) -> pa.Table:
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    rows = [{"key": int(k), **asdict(item)} for k, item in zip(keys, items, strict=True)]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), pa.float32())
    return table.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, dim))


def read_shard_table(path: Path) -> tuple[pa.Table, np.ndarray]:
    """A shard's items (the index's item schema) and their vectors."""
    table = pq.read_table(path)
    if table.schema.names != [*SCHEMA.names, "vector"]:
        raise IncompleteIndexError(f"{path}: columns {table.schema.names} are not a shard's")
    column = table.column("vector").combine_chunks()
    dim = column.type.list_size
    vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    return table.drop_columns(["vector"]).cast(SCHEMA), vectors.astype(np.float32, copy=False)


def _build_shard(task: tuple) -> bytes:
    """(empty index as bytes, keys, vectors) -> the filled index as bytes (runs on a worker)."""
    empty, keys, vectors = task
    index = faiss.deserialize_index(np.frombuffer(empty, dtype=np.uint8).copy())
    if len(keys):
        index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.asarray(keys, np.int64))
    return faiss.serialize_index(index).tobytes()


def _empty_indexes(dim: int, settings: IndexSettings, kinds: dict[str, str],
                   vectors: dict[str, np.ndarray]) -> dict[str, bytes]:
    """Per modality, an empty faiss index of its kind, trained once on all its vectors."""
    return {
        m: faiss.serialize_index(make_faiss_index(dim, kind, settings, vectors[m])).tobytes()
        for m, kind in kinds.items()
    }


def _write_shards(
    tmp: Path,
    backend: Backend,
    parts: dict[int, tuple[np.ndarray, list[Item], np.ndarray]],
    empty: dict[str, bytes],
) -> None:
    """Write each shard of ``parts`` (keys, items, vectors): its Parquet and faiss files, the
    faiss indexes filled on the backend's workers."""
    tasks, names = [], []
    for number, (keys, items, vectors) in sorted(parts.items()):
        folder = tmp / shard_dir(number)
        folder.mkdir(parents=True)
        pq.write_table(_table(keys, items, vectors), folder / EMBEDDINGS, compression="zstd")
        modality = np.asarray([item.modality for item in items])
        for name, blank in empty.items():
            chosen = modality == name
            tasks.append((blank, keys[chosen], vectors[chosen]))
            names.append(folder / f"{name}.faiss")
    for path, data in zip(names, backend.map(_build_shard, tasks, "faiss shards"), strict=True):
        faiss.write_index(faiss.deserialize_index(np.frombuffer(data, np.uint8).copy()), str(path))


def _listing(dim, next_key, settings, kinds, info, counts: dict[int, dict[str, int]]) -> dict:
    totals = {m: sum(c.get(m, 0) for c in counts.values()) for m in kinds}
    return {
        "dim": dim,
        "next_key": next_key,
        "settings": asdict(settings),
        "modalities": {m: {"kind": k, "items": totals[m], "deleted": []} for m, k in kinds.items()},
        "info": info,
        "generation": 1,
        "base": {"rows": 0},
        "segments": [],
        "shards": [
            {"dir": shard_dir(n), "items": {m: c.get(m, 0) for m in kinds}}
            for n, c in sorted(counts.items())
        ],
    }


def _split(keys: np.ndarray, items: list[Item], vectors: np.ndarray, shards: int) -> dict:
    numbers = np.asarray([shard_of(item.id, shards) for item in items], dtype=np.int64)
    parts = {}
    for number in range(shards):
        chosen = np.flatnonzero(numbers == number)
        parts[number] = (keys[chosen], [items[i] for i in chosen], vectors[chosen])
    return parts


def _counts(items: list[Item]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.modality] = counts.get(item.modality, 0) + 1
    return counts


def build_sharded(
    backend: Backend,
    run_dir: Path,
    pipeline,
    collection,
    out: Path,
    shards: int,
    split_names: Iterable[str] = ("test",),
    settings: IndexSettings | None = None,
    progress=None,
) -> tuple[dict, list[str]]:
    """Embed a collection on ``backend`` and write a sharded index directory at ``out``
    (atomically, with ``run_dir``'s pipeline under ``model/``). Returns the listing's item
    counts per modality and the skipped items."""
    if shards < 1:
        raise ValueError(f"--shards must be at least 1, got {shards}")
    split_names = list(split_names)
    settings = settings or IndexSettings()
    rows, skipped = collection_rows(pipeline, collection, split_names)
    if not rows:
        raise ValueError(f"{_name(collection)}: nothing to index")
    items, vectors, failed = embed_rows(backend, run_dir, rows, progress)
    skipped += failed
    if not items:
        raise ValueError(f"{_name(collection)}: nothing to index")
    keys = np.arange(len(items), dtype=np.int64)
    counts = _counts(items)
    by_modality = {m: vectors[[i.modality == m for i in items]] for m in counts}
    kinds = {m: settings.resolved_kind(n) for m, n in counts.items()}
    root = collection.root if isinstance(collection, Manifest) else collection.path
    info = {
        "collection": _name(collection),
        "collection_root": str(Path(root).resolve()),
        "splits": split_names if not isinstance(collection, Manifest) else [],
        "dataset": pipeline.dataset_name,
        "method": pipeline.method_name,
        "categories": list(pipeline.categories),
        "run": str(Path(run_dir).resolve()),
    }
    parts = _split(keys, items, vectors, shards)
    empty = _empty_indexes(vectors.shape[1], settings, kinds, by_modality)
    with atomic_directory(Path(out)) as tmp:
        pipeline.save(tmp / MODEL_DIR)
        _write_shards(tmp, backend, parts, empty)
        counts_by_shard = {n: _counts(p[1]) for n, p in parts.items()}
        write_listing(tmp, _listing(vectors.shape[1], len(items), settings, kinds, info,
                                    counts_by_shard))
    return counts, skipped


def _name(collection) -> str:
    return f"manifest:{collection.path.name}" if isinstance(collection, Manifest) \
        else collection.name


def add_to_sharded(
    backend: Backend, index_dir: Path, collection, split_names: Iterable[str] = ("test",),
    progress=None,
) -> tuple[dict, list[str]]:
    """Embed a collection with the index's own model and add it to a sharded index: shards
    that receive items are rewritten, the others linked; the new directory replaces the old
    one atomically. Returns the item counts per modality and the skipped items."""
    from fglab.pipeline import RetrievalPipeline

    index_dir = Path(index_dir)
    current = EmbeddingIndex.load(index_dir, vectors=False)  # verifies every file
    listing = current.origin.listing
    pipeline = RetrievalPipeline.load(index_dir / MODEL_DIR)
    root = collection.root if isinstance(collection, Manifest) else collection.path
    if str(Path(root).resolve()) != current.info.get("collection_root"):
        raise ValueError(
            f"{_name(collection)} lies under {Path(root).resolve()}, the index's collection "
            f"under {current.info.get('collection_root')}; items must come from the same folder"
        )
    rows, skipped = collection_rows(pipeline, collection, list(split_names))
    present = current.items.keys_of_ids([r["item"].id for r in rows])
    if present:
        raise ValueError(f"item id {next(iter(present))!r} is already in the index")
    items, vectors, failed = embed_rows(backend, index_dir / MODEL_DIR, rows, progress)
    skipped += failed
    shards = len(listing["shards"])
    keys = np.arange(current.next_key, current.next_key + len(items), dtype=np.int64)
    kinds = dict(current.kinds)
    settings = current.settings
    new_counts = _counts(items)
    fresh = {m: settings.resolved_kind(n) for m, n in new_counts.items() if m not in kinds}
    kinds.update(fresh)
    parts = {n: p for n, p in _split(keys, items, vectors, shards).items() if p[1]}
    counts = {n: dict(s["items"]) for n, s in enumerate(listing["shards"])}
    with atomic_directory(index_dir) as tmp:
        shutil.copytree(index_dir / MODEL_DIR, tmp / MODEL_DIR, copy_function=_link)
        empty = {}
        if fresh:  # a modality new to the index: every shard gets an index of it
            by_modality = {m: vectors[[i.modality == m for i in items]] for m in fresh}
            empty = _empty_indexes(current.dim, settings, fresh, by_modality)
        for number in range(shards):
            folder = tmp / shard_dir(number)
            if number not in parts:
                shutil.copytree(index_dir / shard_dir(number), folder, copy_function=_link)
                for name, blank in empty.items():
                    index = faiss.deserialize_index(np.frombuffer(blank, np.uint8).copy())
                    faiss.write_index(index, str(folder / f"{name}.faiss"))
                continue
            old_table, old_vectors = read_shard_table(index_dir / shard_dir(number) / EMBEDDINGS)
            new_keys, new_items, new_vectors = parts[number]
            old_items = ItemTable(old_table)
            merged = (
                np.concatenate([old_items.keys, new_keys]),
                [*old_items, *new_items],
                np.vstack([old_vectors, new_vectors]) if len(old_vectors) else new_vectors,
            )
            start = {m: _read_blank(index_dir / shard_dir(number) / f"{m}.faiss")
                     for m in current.kinds}
            start.update(empty)
            _write_shards(tmp, backend, {number: merged}, start)
            for modality, count in _counts(new_items).items():
                counts[number][modality] = counts[number].get(modality, 0) + count
        info = dict(current.info)
        write_listing(tmp, {**_listing(current.dim, int(keys[-1]) + 1 if len(keys) else
                                       current.next_key, settings, kinds, info, counts),
                            "generation": listing.get("generation", 1) + 1})
    return new_counts, skipped


def _read_blank(path: Path) -> bytes:
    """A shard's faiss index emptied of its vectors (keeping what it was trained on)."""
    index = faiss.read_index(str(path))
    index.reset()
    return faiss.serialize_index(index).tobytes()


def _link(source: str, target: str) -> None:
    """Hard-link an unchanged file into the new directory (a copy where links fail)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# -- loading ---------------------------------------------------------------------------------


def load_sharded(cls: type[EmbeddingIndex], path: Path, listing: dict, vectors: bool):
    """An :class:`EmbeddingIndex` over a sharded directory (``listing`` already verified):
    the items of every shard, and, with ``vectors``, each modality's shards searched together
    by :class:`ShardedVectors`."""
    from fglab.index.disk import Changes, Origin, read_faiss

    try:
        index = cls(int(listing["dim"]), IndexSettings(**listing["settings"]), listing.get("info"))
        index.next_key = int(listing["next_key"])
        index.has_vectors = vectors
        index.kinds = {m: meta["kind"] for m, meta in listing["modalities"].items()}
        tables, parts = [], {m: [] for m in index.kinds}
        for shard in listing["shards"]:
            folder = path / shard["dir"]
            table = pq.read_table(folder / EMBEDDINGS, columns=SCHEMA.names)
            tables.append(table.cast(SCHEMA))
            if vectors:
                for modality in index.kinds:
                    parts[modality].append(LocalShard(read_faiss(folder / f"{modality}.faiss",
                                                                 index.dim)))
    except (KeyError, TypeError, ValueError, OSError, pa.ArrowException) as error:
        raise IncompleteIndexError(f"{path}: unreadable sharded index ({error})") from error
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    order = pc.sort_indices(table, [("key", "ascending")])
    index.items = ItemTable(table.take(order))
    if vectors:
        for modality, found in parts.items():
            count = sum(part.ntotal for part in found)
            index.modalities[modality] = ModalityIndex(ShardedVectors(found, count),
                                                       index.kinds[modality])
    index.changes = Changes(start_row=len(index.items.table))
    index.origin = Origin(path.resolve(), listing)
    return index
