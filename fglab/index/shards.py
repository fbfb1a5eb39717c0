"""Sharded index directories: the items split over shards, each with its own faiss indexes.

    index.json                 the listing (as for any index) plus ``shards``: each shard's
                               folder and item counts; every file's size and SHA-256
    shards/000/embeddings.parquet   the shard's items (key, id, modality, ...) and ``vector``
    shards/000/image.faiss, text.faiss   its faiss indexes (one per modality of the index)
    model/ ...                 the trained run, as in an unsharded index

An item goes to shard ``crc32(id) % N``; keys are global and handed out in the order the
embedded path uses, so a sharded index holds the same keys and vectors as an unsharded one
built from the same collection. A kind that trains (ivf, pq) is trained once per modality, on
all its vectors or a random sample of at most :data:`TRAIN_SAMPLE`, and each shard starts from
a copy of that trained, empty index. A query asks every shard for its top k and
:func:`merge_top_k` keeps the best k (ties: lower key first); with an exact kind that is
exactly the top k of one flat index over all items.

This module is the format only (NumPy, faiss, Arrow). Writing is staged (see "writing" below):
whoever embeds stages each batch's vectors as part files in the build folder
(:func:`write_parts`), and one task per shard writes that shard's files
(:func:`write_staged_shard`), so the process that drives a build never holds the vectors;
:func:`write_staged` finishes a new index, :func:`add_staged` an index with items added (the
shards that receive items rewritten, the others linked). :func:`load_sharded` reads one
(called by :func:`fglab.index.disk.load`). Embedding a collection into one is
:mod:`fglab.ingest`'s job; serving shards on a cluster is :mod:`fglab.cluster`'s.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from fglab.index.atomic import LISTING, MODEL_DIR, IncompleteIndexError, commit_listing
from fglab.index.items import ITEM_FIELDS, SCHEMA, Item, ItemTable
from fglab.index.state import IndexState
from fglab.index.vectors import (
    IndexSettings,
    ModalityIndex,
    make_faiss_index,
    read_faiss,
    write_faiss,
)
from fglab.integrity import file_entry

SHARDS = "shards"
EMBEDDINGS = "embeddings.parquet"
#: ``map_tasks(fn, tasks, what)`` -> ``[fn(t) for t in tasks]``, run wherever the caller's
#: engine runs work (this process by default, a cluster's workers with Ray).
MapTasks = Callable[[Callable, list, str], list]


def map_here(fn: Callable, tasks: list, what: str = "tasks") -> list:
    """:data:`MapTasks` in this process, with a progress bar (closed before an error leaves)."""
    with tqdm(tasks, desc=what, unit="task", leave=False) as bar:
        return [fn(task) for task in bar]


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


# -- writing: staged by the workers, so the caller never holds the vectors -------------------
#
# A build (or an add) happens in an atomic build folder ``tmp`` (on the file system every node
# shares). Whoever embeds writes each batch's vectors to part files under ``tmp/.staging``: one
# per shard the batch touches (``NNN/<batch>.npz``), plus the rows drawn for training
# (``sample/<batch>.npz``). The caller then stages each shard's item metadata (keys, ids, ...)
# and has one task per shard (:func:`write_staged_shard`, on a worker with Ray) gather that
# shard's vectors from its parts and write its Parquet and faiss files, returning only counts
# and the files' sizes and SHA-256. A kind that trains gets a bounded sample, gathered by one
# task per modality (:func:`train_staged`). The staging folder is removed before the listing.

STAGING = ".staging"
SAMPLE = "sample"
#: At most this many vectors of a modality train its index (ivf, pq, ...), drawn at random.
TRAIN_SAMPLE = 100_000
#: Kinds that need no training vectors.
UNTRAINED = ("flat", "hnsw")


@dataclass
class ShardPlan:
    """What the caller knows of the rows it embeds: each row's item, modality, shard and
    whether its vector is in the training sample; once embedded, ``dim`` and ``keep`` (False: a
    row dropped, e.g. a manifest image that could not be read)."""

    items: list[Item]
    modality: np.ndarray
    shard: np.ndarray
    sample: np.ndarray
    dim: int | None = None
    keep: np.ndarray | None = None

    @classmethod
    def of(cls, items: list[Item], shards: int, settings: IndexSettings,
           trained: Iterable[str] | None = None) -> ShardPlan:
        """Plan ``items`` over ``shards``; only modalities in ``trained`` (default: all) may
        draw a training sample."""
        modality = np.asarray([item.modality for item in items], dtype=str)
        shard = np.fromiter((shard_of(item.id, shards) for item in items), np.int32, len(items))
        return cls(items, modality, shard, training_sample(modality, settings, trained))

    @property
    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.keep)


def training_sample(modality: np.ndarray, settings: IndexSettings,
                    trained: Iterable[str] | None = None, limit: int = TRAIN_SAMPLE,
                    seed: int = 0) -> np.ndarray:
    """Which rows' vectors train their modality's index: none for a kind that does not train,
    else every row, or ``limit`` drawn at random. Drawn before embedding: a row that is then
    dropped only makes the sample smaller, and a kind resolved from fewer kept rows is never
    one that trains where this one does not."""
    chosen = np.zeros(len(modality), dtype=bool)
    rng = np.random.default_rng(seed)
    for name in np.unique(modality):
        rows = np.flatnonzero(modality == name)
        if (trained is not None and name not in trained) \
                or settings.resolved_kind(len(rows), sharded=True) in UNTRAINED:
            continue
        chosen[rows if len(rows) <= limit else rng.choice(rows, limit, replace=False)] = True
    return chosen


def write_parts(staging: Path, rows: np.ndarray, vectors: np.ndarray, shards: np.ndarray,
                sample: np.ndarray) -> None:
    """Stage one embedded batch: a part file per shard it touches, one of its sampled rows.
    Each is written under a temporary name, then renamed (a killed worker leaves no part); a
    batch embedded twice (a retried task) gets new names and its rows are read once."""
    rows, vectors = np.asarray(rows, np.int64), np.asarray(vectors, np.float32)
    shards, sample = np.asarray(shards), np.asarray(sample, dtype=bool)
    name = f"{uuid.uuid4().hex}.npz"
    groups = [(f"{int(n):03d}", shards == n) for n in np.unique(shards)] + [(SAMPLE, sample)]
    for folder, chosen in groups:
        if chosen.any():
            path = Path(staging) / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            with open(partial, "wb") as handle:
                np.savez(handle, rows=rows[chosen], vectors=vectors[chosen])
            os.replace(partial, path)


def gather_rows(folder: Path, wanted: np.ndarray, dim: int) -> np.ndarray:
    """The vectors of the ``wanted`` rows (ascending) from the part files in ``folder``."""
    wanted = np.asarray(wanted, dtype=np.int64)
    out = np.zeros((len(wanted), dim), dtype=np.float32)
    found = np.zeros(len(wanted), dtype=bool)
    for path in sorted(Path(folder).glob("*.npz")) if len(wanted) else []:
        with np.load(path, allow_pickle=False) as part:
            rows, vectors = part["rows"], part["vectors"]
        at = np.minimum(np.searchsorted(wanted, rows), len(wanted) - 1)
        hit = wanted[at] == rows
        out[at[hit]] = vectors[hit]
        found[at[hit]] = True
    if not found.all():
        raise IncompleteIndexError(
            f"{folder}: the vectors of {int((~found).sum())} rows were not staged (first: row "
            f"{int(wanted[~found][0])}); build the index again"
        )
    return out


def _items_file(staging: Path, number: int) -> Path:
    return staging / f"items-{number:03d}.parquet"


def stage_items(staging: Path, plan: ShardPlan, keys: np.ndarray, shards: Iterable[int],
                chunk: int = 65_536) -> None:
    """Stage the kept items of each of ``shards`` (the kept rows get ``keys``, in row order):
    their metadata and row numbers, for :func:`write_staged_shard`; written ``chunk`` rows at
    a time, so that only one chunk's columns are built here at once."""
    kept = plan.kept
    schema = SCHEMA.append(pa.field("row", pa.int64()))
    for number in shards:
        chosen = np.flatnonzero(plan.shard[kept] == number)
        with pq.ParquetWriter(_items_file(staging, number), schema) as writer:
            for start in range(0, max(len(chosen), 1), chunk):
                part = chosen[start : start + chunk]
                items = [plan.items[i] for i in kept[part]]
                columns = [keys[part], *([getattr(i, f) for i in items] for f in ITEM_FIELDS),
                           kept[part]]
                writer.write_table(pa.table(columns, schema=schema))
    pa.default_memory_pool().release_unused()


def _with_vectors(table: pa.Table, vectors: np.ndarray, dim: int) -> pa.Table:
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


def write_staged_shard(task: tuple) -> dict:
    """``(tmp, number, dim, start, old)`` -> shard ``number`` written in ``tmp`` (runs on a
    worker): its staged items with their vectors gathered from the parts, after the rows of
    ``old`` (its folder in the index added to) where given; a faiss index per modality of
    ``start`` (serialized empty indexes; None: ``old``'s own, emptied). Returns its item
    counts and its files' sizes and SHA-256."""
    tmp, number, dim, start, old = task
    tmp, staging = Path(tmp), Path(tmp) / STAGING
    table = pq.read_table(_items_file(staging, number))
    vectors = gather_rows(staging / f"{number:03d}", table.column("row").to_numpy(), dim)
    items = table.drop_columns(["row"]).cast(SCHEMA)
    if old is not None:
        old_items, old_vectors = read_shard_table(Path(old) / EMBEDDINGS)
        items, vectors = pa.concat_tables([old_items, items]), np.vstack([old_vectors, vectors])
        start = {m: b if b is not None else _read_blank(Path(old) / f"{m}.faiss")
                 for m, b in start.items()}
    folder = tmp / shard_dir(number)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(_with_vectors(items, vectors, dim), folder / EMBEDDINGS, compression="zstd")
    keys = items.column("key").to_numpy().astype(np.int64)
    modality = np.asarray(items.column("modality").to_pylist(), dtype=str)
    for name, blank in start.items():
        index = faiss.deserialize_index(np.frombuffer(blank, dtype=np.uint8).copy())
        chosen = modality == name
        if chosen.any() and chosen.all():  # one modality (e.g. texts only): no copy
            index.add_with_ids(vectors, keys)
        elif chosen.any():
            index.add_with_ids(np.ascontiguousarray(vectors[chosen]), keys[chosen])
        write_faiss(index, folder / f"{name}.faiss")
    files = {f"{shard_dir(number)}/{p.name}": file_entry(p) for p in sorted(folder.iterdir())}
    return {"number": number, "items": _counts(modality), "files": files}


def train_staged(task: tuple) -> bytes:
    """``(tmp, dim, kind, settings, rows, count)`` -> an empty faiss index of ``kind`` trained
    on the staged sample's ``rows`` (runs on a worker), serialized. An IVF's list count follows
    the modality's ``count`` items, as far as the sample can train it."""
    tmp, dim, kind, settings, rows, count = task
    sample = gather_rows(Path(tmp) / STAGING / SAMPLE, rows, dim)
    if kind == "ivf" and settings.nlist is None and len(rows) < count:
        nlist = max(1, min(int(4 * np.sqrt(count)), len(rows) // 39))
        settings = replace(settings, nlist=nlist)
    return faiss.serialize_index(make_faiss_index(dim, kind, settings, sample)).tobytes()


def _start_indexes(tmp: Path, plan: ShardPlan, settings: IndexSettings, kinds: dict[str, str],
                   counts: dict[str, int], map_tasks: MapTasks) -> dict[str, bytes]:
    """Per modality of ``kinds``, an empty index of its kind (trained where it trains)."""
    kept, start, tasks = plan.kept, {}, []
    for modality, kind in kinds.items():
        if kind in UNTRAINED:
            empty = make_faiss_index(plan.dim, kind, settings, np.zeros((0, plan.dim), np.float32))
            start[modality] = faiss.serialize_index(empty).tobytes()
            continue
        rows = kept[plan.sample[kept] & (plan.modality[kept] == modality)]
        tasks.append((modality, (str(tmp), plan.dim, kind, settings, rows, counts[modality])))
    trained = map_tasks(train_staged, [task for _, task in tasks], "training") if tasks else []
    start.update((modality, blank) for (modality, _), blank in zip(tasks, trained, strict=True))
    return {modality: start[modality] for modality in kinds}


def _counts(modality: np.ndarray) -> dict[str, int]:
    """Items per modality, in the order the modalities first occur."""
    if not len(modality):
        return {}
    names, first, counts = np.unique(modality, return_index=True, return_counts=True)
    return {str(names[i]): int(counts[i]) for i in np.argsort(first)}


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


def _publish_listing(tmp: Path, listing: dict, known: dict[str, dict]) -> None:
    """Write ``index.json`` as :func:`write_listing` does, taking the entries of files the
    workers wrote as they reported them (where the size agrees) and hashing the rest here."""
    shutil.rmtree(tmp / STAGING, ignore_errors=True)
    files = {}
    for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
        name = path.relative_to(tmp).as_posix()
        entry = known.get(name)
        if name != LISTING:
            same = entry is not None and entry["bytes"] == path.stat().st_size
            files[name] = entry if same else file_entry(path)
    commit_listing(tmp, {**listing, "files": files})


def write_staged(tmp: Path, plan: ShardPlan, shards: int, settings: IndexSettings, info: dict,
                 map_tasks: MapTasks = map_here) -> dict[str, int]:
    """Write a sharded index in the build folder ``tmp`` from the staged vectors of ``plan``'s
    rows (keys 0..n-1 for the kept rows, in row order). Returns the item counts per modality."""
    kept = plan.kept
    keys = np.arange(len(kept), dtype=np.int64)
    counts = _counts(plan.modality[kept])
    kinds = {m: settings.resolved_kind(n, sharded=True) for m, n in counts.items()}
    start = _start_indexes(tmp, plan, settings, kinds, counts, map_tasks)
    stage_items(tmp / STAGING, plan, keys, range(shards))
    tasks = [(str(tmp), number, plan.dim, start, None) for number in range(shards)]
    written = map_tasks(write_staged_shard, tasks, "shards")
    by_shard = {result["number"]: result["items"] for result in written}
    _publish_listing(tmp, _listing(plan.dim, len(kept), settings, kinds, info, by_shard),
                     {name: e for result in written for name, e in result["files"].items()})
    return counts


def add_staged(current: IndexState, tmp: Path, plan: ShardPlan,
               map_tasks: MapTasks = map_here) -> dict[str, int]:
    """Write in the build folder ``tmp`` the sharded index ``current`` was loaded from plus
    ``plan``'s kept rows (staged): shards that receive items are rewritten by ``map_tasks``,
    the others linked. Returns the added item counts per modality."""
    index_dir, listing = current.origin.path, current.origin.listing
    if plan.dim != current.dim:
        raise ValueError(f"the new items' vectors have {plan.dim} dimensions, the index's "
                         f"{current.dim}")
    kept = plan.kept
    keys = np.arange(current.next_key, current.next_key + len(kept), dtype=np.int64)
    added = _counts(plan.modality[kept])
    fresh = {m: current.settings.resolved_kind(n, sharded=True) for m, n in added.items()
             if m not in current.kinds}
    kinds = {**current.kinds, **fresh}
    empty = _start_indexes(tmp, plan, current.settings, fresh, added, map_tasks)
    receiving = sorted({int(n) for n in plan.shard[kept]})
    stage_items(tmp / STAGING, plan, keys, receiving)
    shutil.copytree(index_dir / MODEL_DIR, tmp / MODEL_DIR, copy_function=_link)
    counts = {n: dict(s["items"]) for n, s in enumerate(listing["shards"])}
    for number in set(counts) - set(receiving):
        _link_shard(index_dir, tmp, number, empty)
    start = {**dict.fromkeys(current.kinds), **empty}
    tasks = [(str(tmp), n, plan.dim, start, str(index_dir / shard_dir(n))) for n in receiving]
    written = map_tasks(write_staged_shard, tasks, "shards")
    counts.update((result["number"], result["items"]) for result in written)
    known = {**listing.get("files", {}),
             **{name: e for result in written for name, e in result["files"].items()}}
    next_key = int(keys[-1]) + 1 if len(keys) else current.next_key
    _publish_listing(tmp, {
        **_listing(current.dim, next_key, current.settings, kinds, dict(current.info), counts),
        "generation": listing.get("generation", 1) + 1,
    }, known)
    return added


def _link_shard(index_dir: Path, tmp: Path, number: int, empty: dict[str, bytes]) -> None:
    """A shard that receives nothing: its files linked, plus empty indexes of new modalities."""
    folder = tmp / shard_dir(number)
    shutil.copytree(index_dir / shard_dir(number), folder, copy_function=_link)
    for name, blank in empty.items():
        index = faiss.deserialize_index(np.frombuffer(blank, np.uint8).copy())
        write_faiss(index, folder / f"{name}.faiss")


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
