"""On-disk cache of feature vectors, keyed by the content of the input and the extractor's name.

One ``.npy`` file per key, under ``<root>/<extractor>/<2 hex>/<key>.npy``; ``root`` is
``$FGLAB_CACHE/features`` when that variable is set, else ``~/.cache/fglab/features``. Writes are
atomic (temporary file, then rename), so concurrent runs never read half a vector; an entry
that cannot be read is treated as a miss and recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fglab.io import atomic_write

logger = logging.getLogger(__name__)

_HASH_CHUNK = 1 << 20
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+-]")


def default_cache_dir() -> Path:
    """``$FGLAB_CACHE/features`` if set, else ``~/.cache/fglab/features``."""
    base = os.environ.get("FGLAB_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "fglab"
    return root / "features"


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (hex): the same image under another name hits the cache."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def text_digest(text: str) -> str:
    """SHA-256 of a text's UTF-8 bytes (hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class FeatureCache:
    """Vectors of one extractor; ``extractor`` names the model and every setting that changes
    its output (e.g. ``efficientnet-lite0@224-v1``), so a change of settings never hits."""

    def __init__(self, extractor: str, root: Path | None = None) -> None:
        self.extractor = extractor
        self.root = Path(root) if root is not None else default_cache_dir()
        self.folder = self.root / _UNSAFE.sub("_", extractor)

    def path(self, key: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{16,}", key):
            raise ValueError(f"cache key must be a hex digest, got {key!r}")
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached vector, or None (absent or unreadable)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            logger.warning("feature cache: unreadable entry %s (%s); recomputing", path, error)
            return None

    def get_many(self, keys: Iterable[str | None]) -> list[np.ndarray | None]:
        return [None if key is None else self.get(key) for key in keys]

    def put(self, key: str, vector: np.ndarray) -> None:
        array = np.ascontiguousarray(vector)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:  # a file object: np.save would append ".npy"
                np.save(handle, array, allow_pickle=False)

        atomic_write(self.path(key), write)

    def put_many(self, keys: Iterable[str], vectors: Iterable[np.ndarray]) -> None:
        for key, vector in zip(keys, vectors, strict=True):
            self.put(key, vector)
