"""The engine under a build or a server, behind three calls another engine can implement:
embed rows with one pipeline per worker, map a function over tasks, and serve an index's
shards. :class:`LocalBackend` does all three in this process; the Ray adapter
(:class:`fglab.cluster.backend.RayBackend`) runs them on a cluster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

from fglab.features.image_files import ImageFeaturizer
from fglab.index.shards import LocalShard, ShardPart, map_here
from fglab.index.vectors import read_faiss
from fglab.ingest.embedder import Embedded, Embedder, embed_batches

Progress = Callable[[int], None]


class Backend(ABC):
    """Where embedding, shard building and shard serving run."""

    name = "backend"

    @abstractmethod
    def embed(self, pipeline, rows: list[dict], progress: Progress | None = None
              ) -> Iterator[Embedded]:
        """Embed wire rows (:meth:`fglab.ingest.reader.Row.wire`) with ``pipeline``; batches
        in any order."""

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
