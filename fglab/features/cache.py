"""Where features are stored, how inputs are keyed, and the per-file layout of earlier versions.

Inputs are keyed by content: the SHA-256 of an image file's bytes or of a text's UTF-8 bytes,
so the same image under another name is found. The vectors themselves live in
:class:`fglab.features.store.FeatureStore`, under ``$FGLAB_CACHE/features`` when that variable
is set, else ``~/.cache/fglab/features``.

Earlier versions kept one ``.npy`` file per key, ``<root>/<extractor>/<2 hex>/<key>.npy``.
:func:`migrate_legacy_files` moves such files into the store's shards once (the store calls
it when opened) and removes them, so no later lookup walks per-item files.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

_LEGACY_DIR = re.compile(r"^[0-9a-f]{2}$")
_LEGACY_FILE = re.compile(r"^([0-9a-f]{64})\.npy$")


def default_cache_dir() -> Path:
    """``$FGLAB_CACHE/features`` if set, else ``~/.cache/fglab/features``."""
    base = os.environ.get("FGLAB_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "fglab"
    return root / "features"


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex): the same image under another name hits the store."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def text_digest(text: str) -> str:
    """SHA-256 of a text's UTF-8 bytes (hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def legacy_folders(folder: Path) -> list[Path]:
    """The ``<2 hex>`` subfolders of an extractor's folder (the per-file layout)."""
    try:
        return sorted(Path(e.path) for e in os.scandir(folder)
                      if e.is_dir() and _LEGACY_DIR.match(e.name))
    except OSError:  # absent, or unreadable: then the store's own listing reports it
        return []


class ShardWriter(Protocol):
    """What migration needs of a store (FeatureStore is one): its folder and a shard writer."""

    folder: Path
    extractor: str
    shard_rows: int

    def write_shard(self, keys: list[str], vectors: np.ndarray) -> Path | None: ...


def migrate_legacy_files(store: ShardWriter) -> int:
    """Move the per-file entries under ``store.folder`` into shards, then delete them (and
    their emptied folders); unreadable or unusable entries are deleted with one warning (they
    are recomputed when needed). Returns how many vectors moved. A shard that cannot be
    written leaves the files in place for the next attempt."""
    folders = legacy_folders(store.folder)
    if not folders:
        return 0
    keys, vectors, files, bad = [], [], [], []
    for sub in folders:
        try:
            entries = list(os.scandir(sub))
        except OSError as error:
            bad.append(f"{sub} ({error})")
            continue
        for entry in entries:
            match = _LEGACY_FILE.match(entry.name)
            if not match:
                continue
            files.append(Path(entry.path))
            try:
                vector = np.load(entry.path, allow_pickle=False)
            except (OSError, ValueError) as error:
                bad.append(f"{entry.path} ({error})")
                continue
            if vector.ndim != 1 or not np.isfinite(vector).all():
                bad.append(f"{entry.path} (shape {vector.shape} or non-finite values)")
                continue
            keys.append(match.group(1))
            vectors.append(vector.astype(np.float32))
    if bad:
        logger.warning("feature store %s: %d unusable per-file entries dropped (first: %s)",
                       store.extractor, len(bad), bad[0])
    by_dim: dict[int, list[int]] = {}
    for i, vector in enumerate(vectors):
        by_dim.setdefault(len(vector), []).append(i)
    for rows in by_dim.values():
        for start in range(0, len(rows), store.shard_rows):
            chunk = rows[start : start + store.shard_rows]
            if store.write_shard([keys[i] for i in chunk], np.vstack([vectors[i]
                                                                      for i in chunk])) is None:
                return 0  # not written: keep the files
    for path in files:
        with contextlib.suppress(OSError):  # a read-only folder: moved again next time
            path.unlink(missing_ok=True)
    for sub in folders:
        with contextlib.suppress(OSError):  # something else lives there: leave it
            sub.rmdir()
    logger.info("feature store %s: moved %d per-file vectors into shards", store.extractor,
                len(keys))
    return len(keys)
