"""The engine under a build or a server, behind the calls another engine can implement:
embed rows with one pipeline per worker (returning the vectors, or staging them for a sharded
build), map a function over tasks, and serve an index's shards. :class:`LocalBackend` does
them all in this process; the Ray adapter (:class:`fglab.cluster.backend.RayBackend`) runs them
on a cluster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from fglab.features.image_files import ImageFeaturizer
from fglab.index.shards import LocalShard, ShardPart, map_here, write_parts
from fglab.index.vectors import read_faiss
from fglab.ingest.embedder import COLUMNS, Embedded, Embedder, embed_batches

Progress = Callable[[int], None]
#: One staged batch: its row numbers, per row "" or why its input failed, the vectors' width.
Staged = tuple[np.ndarray, list[str], int]


class Backend(ABC):
    """Where embedding, shard building and shard serving run."""

    name = "backend"

    @abstractmethod
    def embed(self, pipeline, rows: list[dict], progress: Progress | None = None
              ) -> Iterator[Embedded]:
        """Embed wire rows (:meth:`fglab.ingest.reader.Row.wire`) with ``pipeline``; batches
        in any order."""

    def embed_staged(self, pipeline, blocks: Iterable[pa.Table], staging: Path, batch: int,
                     progress: Progress | None = None) -> Iterator[Staged]:
        """Embed wire rows given as Arrow blocks (the columns of
        :meth:`fglab.ingest.reader.Row.wire` plus ``shard`` and ``sample``) in batches of
        ``batch`` and stage the vectors under ``staging`` (:func:`fglab.index.shards.write_parts`)
        instead of returning them. This default embeds with :meth:`embed` and stages here; an
        engine whose workers can write the shared build folder stages there."""
        for block in blocks:
            numbers = block.column("row").to_numpy()
            shards, sample = block.column("shard").to_numpy(), block.column("sample").to_numpy()
            wire = block.select(list(COLUMNS)).to_pylist()
            for start in range(0, len(wire), batch):
                found = list(self.embed(pipeline, wire[start : start + batch], progress))
                rows = np.concatenate([np.asarray(f[0], np.int64) for f in found])
                vectors = np.vstack([np.asarray(f[1], np.float32) for f in found])
                at = np.searchsorted(numbers, rows)
                write_parts(staging, rows, vectors, shards[at], sample[at])
                yield rows, [e for f in found for e in f[2]], vectors.shape[1]

    @abstractmethod
    def map(self, fn: Callable, tasks: list, what: str = "tasks") -> list:
        """``[fn(task) for task in tasks]``, run where the engine runs work."""

    @abstractmethod
    def serve_shards(self, index_dir: Path, listing: dict, replicas: int
                     ) -> dict[str, list[ShardPart]]:
        """Start serving an index's shards; per modality, one part per shard."""

    def close(self) -> None:  # noqa: B027 (a backend that starts nothing stops nothing)
        """Stop what :meth:`serve_shards` started."""


class LocalBackend(Backend):
    """Everything in this process: the reference the distributed engines are checked against."""

    name = "local"

    def __init__(self, featurizer: ImageFeaturizer | None = None, cache_dir: str | None = None):
        self.featurizer = featurizer
        self.cache_dir = cache_dir

    def embed(self, pipeline, rows, progress=None):
        return embed_batches(Embedder(pipeline, self.featurizer, self.cache_dir), rows, progress)

    def map(self, fn, tasks, what="tasks"):
        return map_here(fn, tasks, what)

    def serve_shards(self, index_dir, listing, replicas):
        parts: dict[str, list[ShardPart]] = {m: [] for m in listing["modalities"]}
        for shard in listing["shards"]:
            for modality in parts:
                path = Path(index_dir) / shard["dir"] / f"{modality}.faiss"
                parts[modality].append(LocalShard(read_faiss(path, listing["dim"])))
        return parts
