"""An index directory on disk: a base written in full, plus append-only segments.

    index.json                 the listing: settings, counts, segments, every file's SHA-256
    image.faiss, text.faiss    the faiss index of each modality, as of the last full save
    items.parquet              the items of the base (key, id, modality, title, text, ...)
    segments/000001/           one commit of a few changes:
        items.parquet          items added, ``image.npy`` / ``text.npy`` their vectors in
        removed.npy            the same order, and the keys removed (int64)
    model/ ...                 files the caller added (the trained run), carried along

A full save builds a new directory and swaps it in (:func:`fglab.index.atomic.atomic_directory`).
A commit writes a new segment folder and then replaces ``index.json`` with a listing that
names it (:func:`fglab.index.atomic.commit_listing`): existing files are never touched, and a
killed commit leaves the previous listing over intact files. Loading reads the base and
replays the segments into the same in-memory faiss indexes, so a query never looks at
segments separately. Once the segments hold many rows (or many commits) the next commit
rewrites everything as a new base. Format 1 (``items.jsonl``, no segments) still loads; its
first commit rewrites it as format 2.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fglab.index.atomic import (
    LISTING,
    IncompleteIndexError,
    atomic_directory,
    commit_listing,
    file_entry,
    fsync_tree,
    locked,
    remove_stale_builds,
    verify_directory,
    write_listing,
)
from fglab.index.items import ItemTable, read_items, read_items_jsonl, write_items
from fglab.index.refined import RefinedIVF, read_npy_rows, tune, write_npy
from fglab.index.state import Changes, IndexState
from fglab.index.vectors import IndexSettings, ModalityIndex, read_faiss, write_faiss
from fglab.index.watch import directory_identity

logger = logging.getLogger(__name__)

ITEMS = "items.parquet"
V1_ITEMS = "items.jsonl"
SEGMENTS = "segments"
REMOVED = "removed.npy"
#: A commit rewrites the whole index once the segments would exceed either limit.
MAX_SEGMENTS = 64
COMPACT_MIN_ROWS = 10_000
COMPACT_FRACTION = 0.2  # of the base's rows
#: Rows of a segment's vectors put into faiss at a time when an index loads.
REPLAY_ROWS = 1 << 18
#: Reads of a directory that keeps being replaced while it is read, before giving up.
LOAD_ATTEMPTS = 5


def _is_owned(name: str) -> bool:
    """Whether a listed file belongs to the index itself (not to a caller, like the model)."""
    return name in (ITEMS, V1_ITEMS) or name.startswith(f"{SEGMENTS}/") or (
        "/" not in name and name.endswith((".faiss", ".npy"))  # ivfpq: MODALITY.vectors.npy
    )


def _is_vectors(name: str) -> bool:
    return name.endswith(".faiss") or ("/" not in name and name.endswith(".npy")) or (
        name.startswith(f"{SEGMENTS}/") and name.endswith(".npy") and not name.endswith(REMOVED)
    )


# -- load ------------------------------------------------------------------------------------


def load(cls: type[IndexState], path: Path, vectors: bool) -> IndexState:
    """The index at ``path``. A directory replaced while it is read (a full rewrite swaps the
    whole folder; a commit replaces the listing) is read again: a reader sees the old index or
    the new one, never a mix of both reported as damaged."""
    for attempt in range(LOAD_ATTEMPTS):
        before = directory_identity(path)
        last = attempt == LOAD_ATTEMPTS - 1
        try:
            index = _load_once(cls, path, vectors)
        except (IncompleteIndexError, FileNotFoundError):
            if before is None or directory_identity(path) == before or last:
                raise
        else:  # read whole, but files published meanwhile may have joined the read
            if directory_identity(path) == before or last:
                return index
        logger.debug("%s was replaced while it was read; reading it again", path)
    raise AssertionError("unreachable")


def _load_once(cls: type[IndexState], path: Path, vectors: bool) -> IndexState:
    remove_stale_builds(path)
    check = None if vectors else (lambda name: not _is_vectors(name))
    try:
        listing = verify_directory(path, check)
        sharded = bool(listing.get("shards"))
    except (KeyError, TypeError, AttributeError) as error:
        raise IncompleteIndexError(
            f"{path / LISTING} is malformed ({_problem(error)}); build the index again"
        ) from error
    if sharded:  # split over shards/ (fglab.index.shards)
        from fglab.index.shards import load_sharded

        return load_sharded(cls, path, listing, vectors)
    index = _base(cls, path, listing, vectors)
    try:
        for segment in listing.get("segments", []):
            _replay(index, path / segment["dir"], segment, vectors)
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as error:
        raise IncompleteIndexError(
            f"{path}: unreadable index ({_problem(error)}); build it again"
        ) from error
    index.mark_saved(path, listing)
    return index


def _base(cls: type[IndexState], path: Path, listing: dict, vectors: bool) -> IndexState:
    """The index as of its last full save: its items and (with ``vectors``) faiss indexes."""
    try:
        dim = _whole(listing, "dim")
        settings = IndexSettings(**listing["settings"])
        files = listing.get("files", {})
        kinds = {name: meta["kind"] for name, meta in listing["modalities"].items()}
        modalities = {
            name: _read_faiss(path / f"{name}.faiss", meta, dim)
            for name, meta in listing["modalities"].items()
            if vectors and f"{name}.faiss" in files
        }
        next_key = _whole(listing, "next_key")
        version = listing["format_version"]
    except (KeyError, TypeError, AttributeError) as error:
        raise IncompleteIndexError(
            f"{path / LISTING} is malformed ({_problem(error)}); build the index again"
        ) from error
    try:
        table = read_items_jsonl(path / V1_ITEMS) if version == 1 else read_items(path / ITEMS)
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as error:
        raise IncompleteIndexError(
            f"{path}: unreadable index ({_problem(error)}); build it again"
        ) from error
    return cls(dim, settings, listing.get("info"), items=ItemTable(table), kinds=kinds,
               modalities=modalities, next_key=next_key, has_vectors=vectors)


def _whole(listing: dict, key: str) -> int:
    value = listing[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{key!r} is {value!r}, not a whole number")
    return value


def _problem(error: Exception) -> str:
    """One line about ``error``; a KeyError names the missing field instead of just its name."""
    if isinstance(error, KeyError):
        return f"no field {error.args[0]!r}" if error.args else "a field is missing"
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _read_faiss(path: Path, meta: dict, dim: int) -> ModalityIndex:
    if meta["kind"] == "ivfpq":  # codes in memory, full vectors mapped from disk
        tuning = meta.get("tuning") or {}
        ivf = read_faiss(path, dim + dim % 2)
        index = RefinedIVF.load(path.parent, path.stem, dim, ivf, tuning.get("k_factor", 8))
        index.tuning = tuning
        return ModalityIndex(index, "ivfpq", set(meta["deleted"]))
    return ModalityIndex(read_faiss(path, dim), meta["kind"], set(meta["deleted"]))


def _replay(index: IndexState, folder: Path, segment: dict, vectors: bool) -> None:
    """Apply one segment: its items and vectors, then its removals."""
    if segment["added"]:
        part = read_items(folder / ITEMS)
        modality = part.column("modality")
        keys = part.column("key").to_numpy()
        for name, rows in segment["added"].items():
            chosen = keys[pc.equal(modality, name).to_numpy(zero_copy_only=False)]
            if len(chosen) != rows:
                raise ValueError(f"{folder}: {len(chosen)} {name} items, listing says {rows}")
            if vectors:  # a block at a time: a large segment is never held whole
                stored = read_npy_rows(folder / f"{name}.npy", rows, index.dim)
                with stored.handle:
                    for start in range(0, rows, REPLAY_ROWS):
                        stop = min(rows, start + REPLAY_ROWS)
                        index.add_vectors(name, chosen[start:stop], stored.read(start, stop))
        index.items.append_table(part)
    if segment["removed"]:
        index.remove_keys(np.load(folder / REMOVED, allow_pickle=False))


# -- full save -------------------------------------------------------------------------------


def save_full(index: IndexState, path: Path, write_extra=None) -> None:
    _refuse_sharded(index)
    if not index.has_vectors:
        raise RuntimeError("an index loaded without its vectors can only save_changes")
    origin = index.origin if index.origin and index.origin.path == path.resolve() else None
    carried = [n for n in origin.listing["files"] if not _is_owned(n)] if origin else []
    generation = origin.listing.get("generation", 0) + 1 if origin else 1
    with atomic_directory(path) as tmp:
        for modality, faiss_index in index.modalities.items():
            if isinstance(faiss_index.faiss_index, RefinedIVF):
                _tuned(faiss_index.faiss_index, index.settings.recall_target)
                faiss_index.faiss_index.save(tmp, modality, write_faiss)
            else:
                write_faiss(faiss_index.faiss_index, tmp / f"{modality}.faiss")
        write_items(index.items.live(), tmp / ITEMS)
        if write_extra is not None:
            write_extra(tmp)
        for name in carried:  # e.g. the model of an index saved over itself
            if not (tmp / name).exists():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path / name, tmp / name)
        info = _listing(index, generation, [], len(index.items))
        write_listing(tmp, info)
    _saved(index, path)


def _listing(index: IndexState, generation: int, segments: list, base_rows: int) -> dict:
    modalities = {}
    for name, kind in index.kinds.items():
        loaded = index.modalities.get(name)
        deleted = sorted(loaded.deleted) if loaded is not None and not segments else []
        modalities[name] = {"kind": kind, "items": index.count(name), "deleted": deleted}
        tuning = getattr(loaded.faiss_index, "tuning", None) if loaded is not None else None
        if tuning:
            modalities[name]["tuning"] = tuning
    return {
        "dim": index.dim,
        "next_key": index.next_key,
        "settings": asdict(index.settings),
        "modalities": modalities,
        "info": index.info,
        "generation": generation,
        "base": {"rows": base_rows},
        "segments": segments,
    }


def _tuned(index: RefinedIVF, target: float) -> None:
    """Tune an ivfpq index's search to ``target`` unless it was tuned at about its size."""
    done = getattr(index, "tuning", None) or {}
    grown = index.ntotal / max(1, done.get("items", 1))
    if done.get("target") != target or not 0.8 <= grown <= 1.25:
        index.tuning = {**tune(index, target), "items": index.ntotal}
        logger.info("ivfpq tuned: %s", index.tuning)


def _saved(index: IndexState, path: Path) -> None:
    index.mark_saved(path, json.loads((path / LISTING).read_text(encoding="utf-8")))


# -- commits ---------------------------------------------------------------------------------


def save_changes(index: IndexState, path: Path) -> None:
    _refuse_sharded(index)
    origin = index.origin
    if origin is None or origin.path != path.resolve():
        raise ValueError(f"{path}: save_changes commits to the index's own directory; use save")
    if not index.changes:
        return
    with locked(path):
        if json.loads((path / LISTING).read_text(encoding="utf-8")) != origin.listing:
            raise IncompleteIndexError(f"{path} changed since it was loaded; load it again")
        if origin.listing["format_version"] == 1 or _too_many(origin.listing, index.changes):
            save_full(index if index.has_vectors else _with_vectors(index, path), path)
            if not index.has_vectors:
                _saved(index, path)
        else:
            _append_segment(index, path)


def _refuse_sharded(index: IndexState) -> None:
    if index.origin is not None and index.origin.listing.get("shards"):
        raise ValueError(
            f"{index.origin.path} is a sharded index: add items with `fglab index-add`; items "
            "cannot be removed from it (build it again without them)"
        )


def _too_many(listing: dict, changes: Changes) -> bool:
    segments = listing.get("segments", [])
    rows = changes.rows() + sum(sum(s["added"].values()) + s["removed"] for s in segments)
    limit = max(COMPACT_MIN_ROWS, COMPACT_FRACTION * listing["base"]["rows"])
    return len(segments) + 1 > MAX_SEGMENTS or rows > limit


def _with_vectors(index: IndexState, path: Path) -> IndexState:
    """The index at ``path`` loaded whole, with ``index``'s pending changes applied."""
    full = load(type(index), path, vectors=True)
    full.kinds.update(index.kinds)
    part = index.items.rows_from(index.changes.start_row)
    for name, store in index.changes.added.items():
        for keys, rows in store.chunks():
            full.add_vectors(name, keys, rows)
    full.items.append_table(part)
    if index.changes.removed:
        full.remove_keys(np.asarray(index.changes.removed, dtype=np.int64))
    full.next_key = index.next_key
    full.info = index.info
    return full


def _append_segment(index: IndexState, path: Path) -> None:
    listing = index.origin.listing
    generation = listing.get("generation", 0) + 1
    name = f"{SEGMENTS}/{generation:06d}"
    (path / SEGMENTS).mkdir(exist_ok=True)
    _remove_unlisted(path, listing)
    tmp = path / SEGMENTS / f".{generation:06d}.tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        changes = index.changes
        added = {m: len(store) for m, store in changes.added.items()}
        if added:
            write_items(index.items.rows_from(changes.start_row), tmp / ITEMS)
        for modality, store in changes.added.items():
            write_npy(tmp / f"{modality}.npy", (rows for _, rows in store.chunks()),
                      len(store), index.dim)
        if changes.removed:
            np.save(tmp / REMOVED, np.asarray(changes.removed, np.int64), allow_pickle=False)
        fsync_tree(tmp)
        os.rename(tmp, path / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fsync_tree(path / SEGMENTS)
    files = {f"{name}/{f.name}": file_entry(f) for f in sorted((path / name).iterdir())}
    segment = {
        "dir": name,
        "added": added,
        "removed": len(changes.removed),
    }
    info = _listing(index, generation, [*listing.get("segments", []), segment], 0)
    info["base"] = listing["base"]
    for modality, meta in listing["modalities"].items():  # the base's hidden ids stay listed
        info["modalities"][modality]["deleted"] = meta["deleted"]
        if meta.get("tuning"):
            info["modalities"][modality]["tuning"] = meta["tuning"]
    commit_listing(path, {**info, "files": {**listing["files"], **files}})
    _saved(index, path)


def _remove_unlisted(path: Path, listing: dict) -> None:
    """Leftovers of killed commits: segment folders and listings no listing names."""
    listed = {s["dir"] for s in listing.get("segments", [])}
    for entry in (path / SEGMENTS).iterdir():
        if f"{SEGMENTS}/{entry.name}" not in listed:
            shutil.rmtree(entry, ignore_errors=True)
    for entry in path.glob(f".{LISTING}.*.tmp"):
        entry.unlink(missing_ok=True)

