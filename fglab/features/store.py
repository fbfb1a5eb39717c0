"""The feature store: vectors of one extractor in columnar shards, keyed by content digest.

Layout, per extractor (``root`` is ``$FGLAB_CACHE/features``, else ``~/.cache/fglab/features``)::

    <root>/<extractor>/shards/<sha256>.arrow   Arrow IPC files, one record batch each:
                                                key (32-byte SHA-256 of the input), vector
                                                (fixed-size list of float32)

A shard's name is the SHA-256 of its bytes, so the name is its checksum and writers never
share a file: a shard is written whole to a temporary file and renamed into place (a killed
write leaves the old state), and concurrent writers (several processes, Ray workers) only add
files. Finished shards survive a killed run, so featurization resumes where it stopped.

Opening a store reads the key columns only (32 bytes a vector; no file stays open) into one
array sorted by key: a lookup of a batch of keys is a vectorized binary search, never a file
per item. A shard's
checksum is verified the first time its vectors are read; one that fails (or cannot be
parsed) is reported in one warning naming the file, renamed to ``*.corrupt`` and treated as
missing, so its vectors are recomputed. Every vector read back is checked (shape, finite
values); a bad one is reported naming the item and recomputed. The store is only a speed-up:
a write that fails (a full disk, a read-only folder, a file where a folder belongs) or a
folder that cannot be listed is one warning naming the folder, after which the store writes
nothing more in this run, and the caller still gets its vectors. Inside
:func:`writes_required` (``fglab features``, whose product is the store) such a failure is
an OSError naming the folder instead.

Per-file caches of earlier versions (``<root>/<extractor>/<2 hex>/<key>.npy``) are migrated
once into shards the first time the store is opened, then removed. No pickle anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from fglab.features.cache import default_cache_dir, migrate_legacy_files
from fglab.io import atomic_write_bytes, os_error_reason, renamed

logger = logging.getLogger(__name__)

SHARDS = "shards"
SUFFIX = ".arrow"
KEY_BYTES = 32
FORMAT = "1"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+-]")
_SHARD_NAME = re.compile(r"^[0-9a-f]{64}\.arrow$")
_KEY = re.compile(r"^[0-9a-f]{64}$")
_MAX_ITEM_WARNINGS = 5
#: True inside :func:`writes_required`: a failing write raises instead of being a warning.
_writes_required = False


@contextlib.contextmanager
def writes_required() -> Iterator[None]:
    """Within the block a store that cannot be written or listed raises an OSError naming its
    folder, for a command whose product is the store (``fglab features``), not a warning."""
    global _writes_required
    before, _writes_required = _writes_required, True
    try:
        yield
    finally:
        _writes_required = before


def store_folder(extractor: str, root: Path | None = None) -> Path:
    """``<root>/<extractor>`` with unsafe characters of the name replaced."""
    root = Path(root) if root is not None else default_cache_dir()
    return root / _UNSAFE.sub("_", extractor)


def key_bytes(key: str) -> bytes:
    """The 32 bytes of a hex SHA-256 digest; ValueError for anything else."""
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"feature store keys are hex SHA-256 digests (64 chars), got {key!r}")
    return bytes.fromhex(key)


def encode_shard(keys: Sequence[str], vectors: np.ndarray, extractor: str) -> bytes:
    """An Arrow IPC file of ``keys`` and the float32 rows of ``vectors`` (n, dim)."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or len(matrix) != len(keys):
        raise ValueError(f"need one vector row per key, got {matrix.shape} for {len(keys)} keys")
    dim = matrix.shape[1]
    key_array = pa.array([key_bytes(k) for k in keys], type=pa.binary(KEY_BYTES))
    vector_array = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim)
    meta = {"fglab.extractor": extractor, "fglab.dim": str(dim), "fglab.format": FORMAT}
    schema = pa.schema([("key", key_array.type), ("vector", vector_array.type)], metadata=meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(pa.record_batch([key_array, vector_array], schema=schema))
    return sink.getvalue().to_pybytes()


class _Shard:
    """One shard file: its keys, copied out at opening (the file is memory-mapped only while
    it is read, so thousands of shards hold no open files), and its vectors on demand."""

    def __init__(self, path: Path):
        self.path = path
        with pa.memory_map(str(path), "r") as source:
            table = pa.ipc.open_file(source).read_all()
            key_type = table.schema.field("key").type
            vector_type = table.schema.field("vector").type
            if key_type != pa.binary(KEY_BYTES) or not pa.types.is_fixed_size_list(vector_type):
                raise ValueError(f"unexpected columns {table.schema}")
            keys = table.column("key").combine_chunks()
            self.keys = np.frombuffer(keys.buffers()[1], dtype=f"S{KEY_BYTES}",
                                      count=len(keys), offset=keys.offset * KEY_BYTES).copy()
        self.dim = vector_type.list_size
        self.verified = False  # checksum checked at the first read of its vectors

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), dim) float32 copies of these rows."""
        with pa.memory_map(str(self.path), "r") as source:
            column = pa.ipc.open_file(source).read_all().column("vector").combine_chunks()
            flat = column.flatten().to_numpy(zero_copy_only=False)
            return np.array(flat.reshape(len(column), self.dim)[rows], dtype=np.float32)

    def checksum_ok(self) -> bool:
        with open(self.path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest() == self.path.stem


class FeatureStore:
    """Vectors of one extractor; ``extractor`` names the model and every setting that changes
    its output (e.g. ``efficientnet-lite0@224s-fp32-v1``), so a change of settings never hits.

    ``put_many`` buffers vectors and writes a shard every ``shard_rows`` vectors or
    ``flush_seconds`` seconds; ``flush`` writes what is buffered. Buffered vectors are read
    back like stored ones."""

    def __init__(self, extractor: str, root: Path | None = None, shard_rows: int = 4096,
                 flush_seconds: float = 60.0) -> None:
        if shard_rows < 1:
            raise ValueError(f"shard_rows must be at least 1, got {shard_rows}")
        self.extractor = extractor
        self.folder = store_folder(extractor, root)
        self.shard_dir = self.folder / SHARDS
        self.shard_rows = shard_rows
        self.flush_seconds = flush_seconds
        self._shards: dict[str, _Shard] = {}  # file name -> shard
        self._names: list[str] = []  # shard numbers of the lookup
        self._prefix = np.zeros(0, dtype=np.uint64)  # keys' first 8 bytes, sorted
        self._sorted = np.zeros(0, dtype=f"S{KEY_BYTES}")  # the keys, in the same order
        self._shard_of = np.zeros(0, dtype=np.int32)
        self._row_of = np.zeros(0, dtype=np.int64)
        self._pending: dict[str, np.ndarray] = {}
        self._last_flush = time.monotonic()
        self._skipped: set[str] = set()  # files that could not be opened, warned once
        self.write_error: OSError | None = None  # set by the first failure: no more writes
        migrate_legacy_files(self)
        self.refresh()

    # -- lookup -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up shards written since the last look (by this or another process)."""
        try:
            names = sorted(e.name for e in os.scandir(self.shard_dir)
                           if _SHARD_NAME.match(e.name))
        except FileNotFoundError:
            names = []
        except OSError as error:  # a file where the folder belongs, no permission to list
            self._cannot_write(error)
            names = []
        opened = []
        for name in names:
            if name in self._shards or name in self._skipped:
                continue
            path = self.shard_dir / name
            try:
                self._shards[name] = _Shard(path)
            except FileNotFoundError:  # quarantined by another process meanwhile
                continue
            except (OSError, ValueError, KeyError, pa.ArrowException) as error:
                self._quarantine(path, f"cannot be read ({type(error).__name__}: {error})")
                continue
            opened.append(name)
        if opened:
            self._merge(opened)

    def _merge(self, names: list[str]) -> None:
        """Add shards' keys to the lookup, sorted by their first 8 bytes: a few new keys are
        inserted (a copy, not a sort, so many small shards stay cheap), many are sorted in."""
        start = len(self._names)
        self._names += names
        parts = [self._shards[n].keys for n in names]
        keys = np.concatenate(parts)
        shard_of = np.repeat(np.arange(start, start + len(parts), dtype=np.int32),
                             [len(p) for p in parts])
        row_of = np.concatenate([np.arange(len(p), dtype=np.int64) for p in parts])
        prefix = _prefixes(keys)
        if len(keys) * 16 < len(self._prefix):
            order = np.argsort(prefix, kind="stable")
            at = np.searchsorted(self._prefix, prefix[order])
            self._prefix = np.insert(self._prefix, at, prefix[order])
            self._sorted = np.insert(self._sorted, at, keys[order])
            self._shard_of = np.insert(self._shard_of, at, shard_of[order])
            self._row_of = np.insert(self._row_of, at, row_of[order])
            return
        prefix = np.concatenate([self._prefix, prefix])
        order = np.argsort(prefix, kind="stable")
        self._prefix = prefix[order]
        self._sorted = np.concatenate([self._sorted, keys])[order]
        self._shard_of = np.concatenate([self._shard_of, shard_of])[order]
        self._row_of = np.concatenate([self._row_of, row_of])[order]

    def _rebuild(self) -> None:
        """The lookup from the shards still held (after one was dropped)."""
        self._names = []
        self._prefix = np.zeros(0, dtype=np.uint64)
        self._sorted = np.zeros(0, dtype=f"S{KEY_BYTES}")
        self._shard_of = np.zeros(0, dtype=np.int32)
        self._row_of = np.zeros(0, dtype=np.int64)
        if self._shards:
            self._merge(list(self._shards))

    def _quarantine(self, path: Path, why: str) -> None:
        logger.warning("feature store %s: shard %s %s; its vectors are treated as missing and "
                       "recomputed", self.extractor, path, why)
        self._skipped.add(path.name)
        self._shards.pop(path.name, None)
        with contextlib.suppress(OSError):
            path.rename(path.with_name(path.name + ".corrupt"))

    def locate(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(shard number or -1, row) of each key in the stored shards (buffered ones aside)."""
        wanted = np.array([key_bytes(k) for k in keys], dtype=f"S{KEY_BYTES}")
        shard = np.full(len(wanted), -1, dtype=np.int64)
        row = np.full(len(wanted), -1, dtype=np.int64)
        if not len(self._sorted) or not len(wanted):
            return shard, row
        prefix = _prefixes(wanted)
        at = np.minimum(np.searchsorted(self._prefix, prefix), len(self._sorted) - 1)
        found = self._sorted[at] == wanted
        # keys sharing their first 8 bytes with another (about 1 in 10^7 pairs at 1M keys)
        for i in np.flatnonzero(~found & (self._prefix[at] == prefix)):
            end = np.searchsorted(self._prefix, prefix[i], side="right")
            match = np.flatnonzero(self._sorted[at[i] : end] == wanted[i])
            if len(match):
                at[i], found[i] = at[i] + match[0], True
        shard[found], row[found] = self._shard_of[at[found]], self._row_of[at[found]]
        return shard, row

    def __len__(self) -> int:
        """Distinct keys stored or buffered."""
        pending = list(self._pending)
        unstored = int((self.locate(pending)[0] < 0).sum()) if pending else 0
        return len(np.unique(self._sorted)) + unstored

    def __contains__(self, key: str) -> bool:
        return key in self._pending or self.locate([key])[0][0] >= 0

    # -- reading ------------------------------------------------------------------------

    def get(self, key: str, dim: int | None = None) -> np.ndarray | None:
        return self.get_many([key], dim)[0]

    def get_many(self, keys: Iterable[str | None], dim: int | None = None
                 ) -> list[np.ndarray | None]:
        """The stored vector of each key, or None (absent, None key, or bad: then recomputed
        by the caller). ``dim``: the length every vector must have."""
        keys = list(keys)
        self.refresh()
        out: list[np.ndarray | None] = [None] * len(keys)
        asked = [i for i, k in enumerate(keys) if k is not None and k not in self._pending]
        bad: list[str] = []
        for i, key in enumerate(keys):
            if key is not None and key in self._pending:
                why = vector_problem(self._pending[key], dim)
                if why:
                    bad.append(f"item {key}: {why}")
                else:
                    out[i] = self._pending[key].copy()
        for _ in range(2):  # again once if a shard failed: its keys may be in another one
            if not asked:
                break
            shard, row = self.locate([keys[i] for i in asked])
            names, failed = list(self._names), False
            for number in np.unique(shard[shard >= 0]):
                chosen = np.flatnonzero(shard == number)
                vectors = self._read(names[number], row[chosen])
                if vectors is None:
                    failed = True
                    continue
                usable = np.isfinite(vectors).all(axis=1) & (dim is None or
                                                             vectors.shape[1] == dim)
                for j, vector, ok in zip(chosen, vectors, usable, strict=True):
                    if ok:
                        out[asked[j]] = vector
                    else:
                        why = vector_problem(vector, dim)
                        bad.append(f"item {keys[asked[j]]} in {names[number]}: {why}")
            if not failed:
                break
            self._rebuild()
            asked = [i for i in asked if out[i] is None]
        for line in bad[:_MAX_ITEM_WARNINGS]:
            logger.warning("feature store %s: %s; recomputing", self.extractor, line)
        if len(bad) > _MAX_ITEM_WARNINGS:
            logger.warning("feature store %s: %d more bad vectors; recomputing them",
                           self.extractor, len(bad) - _MAX_ITEM_WARNINGS)
        return out

    def missing(self, keys: Sequence[str], dim: int | None = None, chunk: int = 8192
                ) -> list[str]:
        """The keys whose vectors :meth:`get_many` would not return (absent or bad), in
        order; read in chunks, so memory stays bounded for millions of keys."""
        out: list[str] = []
        for start in range(0, len(keys), chunk):
            part = list(keys[start : start + chunk])
            out += [k for k, v in zip(part, self.get_many(part, dim), strict=True) if v is None]
        return out

    def _read(self, name: str, rows: np.ndarray) -> np.ndarray | None:
        shard = self._shards[name]
        if not shard.verified:
            try:
                ok = shard.checksum_ok()
            except OSError as error:
                ok, why = False, f"cannot be read ({error})"
            else:
                why = "fails its SHA-256 checksum"
            if not ok:
                self._quarantine(shard.path, why)
                return None
            shard.verified = True
        try:
            return shard.vectors(rows)
        except (OSError, ValueError, pa.ArrowException) as error:
            self._quarantine(shard.path, f"cannot be read ({error})")
            return None

    # -- writing ------------------------------------------------------------------------

    def put(self, key: str, vector: np.ndarray) -> None:
        self.put_many([key], [vector])

    def put_many(self, keys: Iterable[str], vectors: Iterable[np.ndarray]) -> None:
        """Buffer vectors (non-finite ones are refused with a warning naming the item); a
        shard is written once enough are buffered or enough time has passed."""
        if self.write_error is not None:
            return  # not kept in memory either: nothing would ever write them
        for key, vector in zip(keys, vectors, strict=True):
            key_bytes(key)
            vector = np.asarray(vector, dtype=np.float32)
            why = vector_problem(vector, None)
            if why:
                logger.warning("feature store %s: item %s: %s; not stored", self.extractor,
                               key, why)
                continue
            self._pending[key] = vector
            if len(self._pending) >= self.shard_rows:
                self.flush()
        if self._pending and time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered vectors as shards of at most ``shard_rows``. An OSError (a full
        disk, a read-only folder) is one warning and ends writing for this store: the vectors
        are dropped from the buffer, not stored, and the job goes on."""
        pending, self._pending = self._pending, {}
        self._last_flush = time.monotonic()
        by_dim: dict[int, list[str]] = {}
        for key, vector in pending.items():
            by_dim.setdefault(len(vector), []).append(key)
        for keys in by_dim.values():
            for start in range(0, len(keys), self.shard_rows):
                chunk = keys[start : start + self.shard_rows]
                self.write_shard(chunk, np.vstack([pending[k] for k in chunk]))

    def write_shard(self, keys: Sequence[str], vectors: np.ndarray) -> Path | None:
        """One shard of ``keys`` and ``vectors``, written atomically; its path, or None where
        the write failed (warned once) or an earlier one did."""
        if self.write_error is not None:
            return None
        data = encode_shard(keys, vectors, self.extractor)
        path = self.shard_dir / f"{hashlib.sha256(data).hexdigest()}{SUFFIX}"
        try:
            atomic_write_bytes(path, data)
        except OSError as error:
            self._cannot_write(error)
            return None
        self.refresh()
        return path

    def _cannot_write(self, error: OSError) -> None:
        """The first write or listing that failed: one warning naming the folder, and no more
        writes (inside :func:`writes_required`: an OSError naming the folder)."""
        if _writes_required:
            raise renamed(error, str(self.folder)) from error
        if self.write_error is not None:
            return
        self.write_error = error
        self._pending = {}
        logger.warning("feature store %s: could not write (%s); features are still computed, "
                       "but not stored for the rest of this run", self.folder,
                       os_error_reason(error))

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


def _prefixes(keys: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each 32-byte key as a big-endian integer (sorts as the bytes)."""
    raw = np.ascontiguousarray(keys).view(np.uint8).reshape(-1, KEY_BYTES)[:, :8]
    return np.ascontiguousarray(raw).view(">u8").ravel().astype(np.uint64)


def vector_problem(vector: np.ndarray, dim: int | None) -> str:
    """Why a vector cannot be used ("" if it can): not 1-D of ``dim``, or not finite."""
    if vector.ndim != 1 or (dim is not None and vector.shape != (dim,)):
        expected = f"({dim},)" if dim is not None else "one dimension"
        return f"vector of shape {vector.shape}, expected {expected}"
    if not np.isfinite(vector).all():
        return f"{int((~np.isfinite(vector)).sum())} non-finite values"
    return ""


_OPEN: dict[Path, FeatureStore] = {}


def open_store(extractor: str, root: Path | None = None) -> FeatureStore:
    """The process's store of ``extractor`` under ``root``: opened (its keys read) once, then
    refreshed with new shards at each read."""
    folder = store_folder(extractor, root).resolve()
    store = _OPEN.get(folder)
    if store is None or store.extractor != extractor:
        store = _OPEN[folder] = FeatureStore(extractor, root)
    return store
