"""Embedding a collection's rows on Ray Data workers, one pipeline per worker.

The trained run travels to each worker as its files' bytes (checked against the run's own
listing on load), so the nodes need no copy of it. Image files are read where the worker runs:
the collection must be at the same path on every node (a shared file system). For a sharded
build the workers also write the vectors (:func:`ray_embed_staged`): into the build folder,
which must be on a file system every node shares too; only row numbers and errors come back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from fglab.cluster.actors import actor_pool_batches, actor_pool_map
from fglab.index.shards import write_parts
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


class StagingEmbedder(RunEmbedder):
    """A :class:`RunEmbedder` that writes each batch's vectors to the build folder's staging
    part files (:func:`fglab.index.shards.write_parts`) and returns only the row numbers, the
    errors and the vectors' width."""

    def __init__(self, files: dict[str, bytes], cache_dir: str | None, staging: str):
        super().__init__(files, cache_dir)
        self.staging = Path(staging)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = super().__call__(batch)
        rows, vectors = out["row"], out["vector"]
        write_parts(self.staging, rows, vectors, np.asarray(batch["shard"]),
                    np.asarray(batch["sample"], dtype=bool))
        return {"row": rows, "error": out["error"],
                "dim": np.full(len(rows), vectors.shape[1], dtype=np.int64)}


def ray_embed_staged(
    pipeline,
    blocks: Iterable,
    staging: Path,
    batch: int,
    workers: int,
    progress: Callable[[int], None] | None = None,
    cache_dir: str | None = None,
) -> Iterator[tuple[np.ndarray, list[str], int]]:
    """Ray Data over Arrow ``blocks`` (each put in the object store as it is made): ``workers``
    actors of one CPU each embed batches of ``batch`` rows and stage the vectors under
    ``staging``; (row numbers, errors, width) come back as batches finish."""
    import ray

    files = pipeline_files(pipeline)
    # from the object store, not from files: Ray Data's read tasks would wait for CPUs that
    # the actors hold where --workers takes every CPU
    dataset = ray.data.from_arrow_refs([ray.put(block) for block in blocks])
    args = (files, cache_dir, str(staging))
    for out in actor_pool_map(dataset, StagingEmbedder, args, batch, workers):
        if progress:
            progress(len(out["row"]))
        yield out["row"], [str(e) for e in out["error"]], int(out["dim"][0])
