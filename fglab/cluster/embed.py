"""Embedding rows of a collection with one copy of the trained pipeline per worker.

A row is a plain dict (``row``, ``kind``, ``value``, ``features``) so that any engine can
carry it: ``kind`` says what the input is (raw text, an image file, or precomputed image or
text features), ``value`` holds the text or the file path. :class:`Embedder` turns a batch of
rows into vectors, in a Ray Data worker (:func:`ray_embed`) or in process; the trained run
travels to each worker as its files' bytes (checked against the run's own listing on load),
so the nodes need no copy of it. Image files are read where the worker runs: the collection
must be at the same path on every node (a shared file system).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from fglab.cluster.actors import actor_pool_batches

#: Row kinds and the pipeline call that embeds them.
KINDS = ("text", "image-file", "image-features", "text-features")
BATCH = 64
#: One embedded batch: row numbers, their vectors, and per row "" or why its input failed
#: (a failed image is embedded from zero features, as the embedded path does for data sets).
Embedded = tuple[np.ndarray, np.ndarray, list[str]]


def model_files(run_dir: Path) -> dict[str, bytes]:
    """Every file of a trained run, by relative path: what a worker needs to load it."""
    run_dir = Path(run_dir)
    return {
        p.relative_to(run_dir).as_posix(): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def load_model_files(files: dict[str, bytes]):
    """A :class:`RetrievalPipeline` from :func:`model_files`'s output (via a temporary copy)."""
    from fglab.pipeline import RetrievalPipeline

    tmp = Path(tempfile.mkdtemp(prefix="fglab-run-"))
    try:
        for name, data in files.items():
            path = tmp / name
            if ".." in Path(name).parts or Path(name).is_absolute():
                raise ValueError(f"run file {name!r} lies outside the run")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return RetrievalPipeline.load(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Embedder:
    """Batch of rows (dict of columns) -> ``{"row", "vector", "error"}``; one pipeline each."""

    def __init__(self, files: dict[str, bytes], cache_dir: str | None = None):
        self.pipeline = load_model_files(files)
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = np.asarray(batch["row"], dtype=np.int64)
        kinds = [str(k) for k in batch["kind"]]
        vectors: list[np.ndarray | None] = [None] * len(rows)
        errors = [""] * len(rows)
        for kind in sorted(set(kinds)):
            chosen = [i for i, k in enumerate(kinds) if k == kind]
            out, failed = self._embed(kind, [batch["value"][i] for i in chosen],
                                      [batch["features"][i] for i in chosen])
            for j, i in enumerate(chosen):
                vectors[i] = out[j]
                errors[i] = failed.get(j, "")
        return {
            "row": rows,
            "vector": np.vstack(vectors).astype(np.float32),
            "error": np.asarray(errors, dtype=object),
        }

    def _embed(self, kind: str, values: list, features: list) -> tuple[np.ndarray, dict]:
        pipeline = self.pipeline
        if kind == "text":
            return np.asarray(pipeline.encode_texts([str(v) for v in values])), {}
        if kind == "image-file":
            from fglab.index.build import default_image_featurizer

            paths = [Path(str(v)) for v in values]
            found, failed = default_image_featurizer()(
                paths, pipeline.image_view, cache_dir=self.cache_dir
            )
            return np.asarray(pipeline.encode_image_features(found)), failed
        matrix = np.vstack([np.asarray(f, dtype=np.float64) for f in features])
        if kind == "image-features":
            return np.asarray(pipeline.encode_image_features(matrix)), {}
        if kind == "text-features":
            return np.asarray(pipeline.method.encode_texts(matrix)), {}
        raise ValueError(f"row kind must be one of {', '.join(KINDS)}, got {kind!r}")


def local_embed(
    files: dict[str, bytes],
    rows: list[dict],
    progress: Callable[[int], None] | None = None,
    cache_dir: str | None = None,
) -> Iterator[Embedded]:
    """:class:`Embedder` in this process, batch by batch."""
    embedder = Embedder(files, cache_dir)
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        out = embedder({c: [r[c] for r in chunk] for c in ("row", "kind", "value", "features")})
        if progress:
            progress(len(chunk))
        yield out["row"], out["vector"], list(out["error"])


def ray_embed(
    files: dict[str, bytes],
    rows: list[dict],
    workers: int,
    progress: Callable[[int], None] | None = None,
    cache_dir: str | None = None,
) -> Iterator[Embedded]:
    """Ray Data: the rows in blocks, embedded by ``workers`` actors of one CPU each, each
    holding one pipeline; batches come back to this process as they finish."""
    blocks = max(1, len(rows) // BATCH)
    for batch in actor_pool_batches(rows, Embedder, (files, cache_dir), BATCH, workers, blocks):
        if progress:
            progress(len(batch["row"]))
        yield batch["row"], batch["vector"], [str(e) for e in batch["error"]]
