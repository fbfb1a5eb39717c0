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

This module is the format only (NumPy, faiss, Arrow): :func:`write_sharded` writes one,
:func:`load_sharded` reads one (called by :func:`fglab.index.disk.load`), and
:func:`add_to_sharded` rewrites the shards that receive items and links the others into a new
directory, published atomically. Embedding a collection into one is :mod:`fglab.ingest`'s
job; serving shards on a cluster is :mod:`fglab.cluster`'s.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from fglab.index.atomic import (
    LISTING,
    MODEL_DIR,
    IncompleteIndexError,
    atomic_directory,
    write_listing,
)
from fglab.index.items import SCHEMA, Item, ItemTable
from fglab.index.state import IndexState
from fglab.index.vectors import (
    IndexSettings,
    ModalityIndex,
    make_faiss_index,
    read_faiss,
    write_faiss,
)

SHARDS = "shards"
EMBEDDINGS = "embeddings.parquet"
#: ``map_tasks(fn, tasks, what)`` -> ``[fn(t) for t in tasks]``, run wherever the caller's
#: engine runs work (this process by default, a cluster's workers with Ray).
MapTasks = Callable[[Callable, list, str], list]


def map_here(fn: Callable, tasks: list, what: str = "tasks") -> list:
    """:data:`MapTasks` in this process, with a progress bar."""
    return [fn(task) for task in tqdm(tasks, desc=what, unit="task", leave=False)]


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


def fill_shard(task: tuple) -> bytes:
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
    parts: dict[int, tuple[np.ndarray, list[Item], np.ndarray]],
    empty: dict[str, bytes],
    map_tasks: MapTasks,
) -> None:
    """Write each shard of ``parts`` (keys, items, vectors): its Parquet and faiss files, the
    faiss indexes filled by ``map_tasks`` (in this process or on a cluster's workers)."""
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
    for path, data in zip(names, map_tasks(fill_shard, tasks, "faiss shards"), strict=True):
        write_faiss(faiss.deserialize_index(np.frombuffer(data, np.uint8).copy()), path)


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


def write_sharded(
    out: Path,
    items: list[Item],
    vectors: np.ndarray,
    shards: int,
    info: dict,
    settings: IndexSettings | None = None,
    map_tasks: MapTasks = map_here,
    write_extra: Callable[[Path], None] | None = None,
) -> dict[str, int]:
    """Write ``items`` with their ``vectors`` as a sharded index directory at ``out``,
    atomically (keys 0..n-1 in the given order); ``write_extra(tmp)`` adds files (the model).
    Returns the item counts per modality."""
    if shards < 1:
        raise ValueError(f"--shards must be at least 1, got {shards}")
    settings = settings or IndexSettings()
    keys = np.arange(len(items), dtype=np.int64)
    counts = _counts(items)
    by_modality = {m: vectors[[i.modality == m for i in items]] for m in counts}
    kinds = {m: settings.resolved_kind(n) for m, n in counts.items()}
    parts = _split(keys, items, vectors, shards)
    empty = _empty_indexes(vectors.shape[1], settings, kinds, by_modality)
    with atomic_directory(Path(out)) as tmp:
        if write_extra is not None:
            write_extra(tmp)
        _write_shards(tmp, parts, empty, map_tasks)
        counts_by_shard = {n: _counts(p[1]) for n, p in parts.items()}
        write_listing(tmp, _listing(vectors.shape[1], len(items), settings, kinds, info,
                                    counts_by_shard))
    return counts


def add_to_sharded(
    current: IndexState, items: list[Item], vectors: np.ndarray,
    map_tasks: MapTasks = map_here,
) -> dict[str, int]:
    """Add ``items`` to the sharded index ``current`` was loaded from: shards that receive
    items are rewritten, the others linked; the new directory replaces the old one
    atomically. Returns the added item counts per modality."""
    index_dir = current.origin.path
    listing = current.origin.listing
    present = current.items.keys_of_ids([item.id for item in items])
    if present:
        raise ValueError(f"item id {next(iter(present))!r} is already in the index")
    shards = len(listing["shards"])
    keys = np.arange(current.next_key, current.next_key + len(items), dtype=np.int64)
    kinds = dict(current.kinds)
    new_counts = _counts(items)
    fresh = {m: current.settings.resolved_kind(n) for m, n in new_counts.items() if m not in kinds}
    kinds.update(fresh)
    parts = {n: p for n, p in _split(keys, items, vectors, shards).items() if p[1]}
    counts = {n: dict(s["items"]) for n, s in enumerate(listing["shards"])}
    empty = {}
    if fresh:  # a modality new to the index: every shard gets an index of it
        by_modality = {m: vectors[[i.modality == m for i in items]] for m in fresh}
        empty = _empty_indexes(current.dim, current.settings, fresh, by_modality)
    with atomic_directory(index_dir) as tmp:
        shutil.copytree(index_dir / MODEL_DIR, tmp / MODEL_DIR, copy_function=_link)
        for number in range(shards):
            if number not in parts:
                _link_shard(index_dir, tmp, number, empty)
                continue
            _rewrite_shard(current, tmp, number, parts[number], empty, map_tasks)
            for modality, count in _counts(parts[number][1]).items():
                counts[number][modality] = counts[number].get(modality, 0) + count
        next_key = int(keys[-1]) + 1 if len(keys) else current.next_key
        write_listing(tmp, {
            **_listing(current.dim, next_key, current.settings, kinds, dict(current.info),
                       counts),
            "generation": listing.get("generation", 1) + 1,
        })
    return new_counts


def _link_shard(index_dir: Path, tmp: Path, number: int, empty: dict[str, bytes]) -> None:
    """A shard that receives nothing: its files linked, plus empty indexes of new modalities."""
    folder = tmp / shard_dir(number)
    shutil.copytree(index_dir / shard_dir(number), folder, copy_function=_link)
    for name, blank in empty.items():
        index = faiss.deserialize_index(np.frombuffer(blank, np.uint8).copy())
        write_faiss(index, folder / f"{name}.faiss")


def _rewrite_shard(current: IndexState, tmp: Path, number: int, part: tuple,
                   empty: dict[str, bytes], map_tasks: MapTasks) -> None:
    """A shard that receives items: its old rows plus the new ones, indexes refilled."""
    old_dir = current.origin.path / shard_dir(number)
    old_table, old_vectors = read_shard_table(old_dir / EMBEDDINGS)
    new_keys, new_items, new_vectors = part
    old_items = ItemTable(old_table)
    merged = (
        np.concatenate([old_items.keys, new_keys]),
        [*old_items, *new_items],
        np.vstack([old_vectors, new_vectors]) if len(old_vectors) else new_vectors,
    )
    start = {m: _read_blank(old_dir / f"{m}.faiss") for m in current.kinds}
    start.update(empty)
    _write_shards(tmp, {number: merged}, start, map_tasks)


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


def load_sharded(cls: type[IndexState], path: Path, listing: dict, vectors: bool
                 ) -> IndexState:
    """An index over a sharded directory (``listing`` already verified): the items of every
    shard, and, with ``vectors``, each modality's shards searched together by
    :class:`ShardedVectors`."""
    try:
        dim = int(listing["dim"])
        kinds = {m: meta["kind"] for m, meta in listing["modalities"].items()}
        tables, parts = [], {m: [] for m in kinds}
        for shard in listing["shards"]:
            folder = path / shard["dir"]
            tables.append(pq.read_table(folder / EMBEDDINGS, columns=SCHEMA.names).cast(SCHEMA))
            if vectors:
                for modality in kinds:
                    parts[modality].append(LocalShard(read_faiss(folder / f"{modality}.faiss",
                                                                 dim)))
        index = cls(dim, IndexSettings(**listing["settings"]), listing.get("info"),
                    kinds=kinds, next_key=int(listing["next_key"]), has_vectors=vectors)
    except (KeyError, TypeError, ValueError, OSError, pa.ArrowException) as error:
        raise IncompleteIndexError(f"{path}: unreadable sharded index ({error})") from error
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    index.items = ItemTable(table.take(pc.sort_indices(table, [("key", "ascending")])))
    if vectors:
        counts = {m: sum(part.ntotal for part in found) for m, found in parts.items()}
        index.attach_vectors(sharded_modalities(parts, kinds, counts))
    index.mark_saved(path, listing)
    return index


def sharded_modalities(parts: dict[str, list[ShardPart]], kinds: dict[str, str],
                       counts: dict[str, int]) -> dict[str, ModalityIndex]:
    """Per modality, its shards' parts (holding ``counts`` vectors) searched as one."""
    return {
        modality: ModalityIndex(ShardedVectors(found, counts[modality]), kinds[modality])
        for modality, found in parts.items()
    }
