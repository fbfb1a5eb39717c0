"""Embedding a collection's rows on Ray Data workers, one pipeline per worker.

The trained run travels to each worker as its files' bytes (checked against the run's own
listing on load), so the nodes need no copy of it. Image files are read where the worker runs:
the collection must be at the same path on every node (a shared file system).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fglab.cluster.actors import actor_pool_batches
from fglab.ingest.embedder import BATCH, Embedded, Embedder, load_pipeline_files, pipeline_files


class RunEmbedder(Embedder):
    """An :class:`Embedder` built in a worker from the run's files."""

    def __init__(self, files: dict[str, bytes], cache_dir: str | None = None):
        super().__init__(load_pipeline_files(files), cache_dir=cache_dir)


def ray_embed(
    pipeline,
    rows: list[dict],
    workers: int,
    progress: Callable[[int], None] | None = None,
    cache_dir: str | None = None,
) -> Iterator[Embedded]:
    """Ray Data: the rows in blocks, embedded by ``workers`` actors of one CPU each, each
    holding one pipeline; batches come back to this process as they finish."""
    files = pipeline_files(pipeline)
    blocks = max(1, len(rows) // BATCH)
    for batch in actor_pool_batches(rows, RunEmbedder, (files, cache_dir), BATCH, workers,
                                    blocks):
        if progress:
            progress(len(batch["row"]))
        yield batch["row"], batch["vector"], [str(e) for e in batch["error"]]
