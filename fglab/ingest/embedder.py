"""The embedder: rows of a collection -> vectors, with one copy of the trained pipeline.

Rows travel as plain dicts (``row``, ``kind``, ``value``, ``features``; see
:meth:`fglab.ingest.reader.Row.wire`) so that any engine can carry them. :class:`Embedder`
turns a batch of them into vectors, in this process (:class:`fglab.ingest.backend.LocalBackend`)
or in a cluster's worker, where the trained run arrives as its files' bytes
(:func:`pipeline_files`, checked against the run's own listing on load). Image files are read
where the embedder runs.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from fglab.features.image_files import ImageFeaturizer, default_image_featurizer
from fglab.ingest.reader import KINDS

BATCH = 64
#: One embedded batch: row numbers, their vectors, and per row "" or why its input failed
#: (a failed image is embedded from zero features).
Embedded = tuple[np.ndarray, np.ndarray, list[str]]
COLUMNS = ("row", "kind", "value", "features")


def pipeline_files(pipeline) -> dict[str, bytes]:
    """Every file of ``pipeline`` saved as a run, by relative path: what a worker needs."""
    tmp = Path(tempfile.mkdtemp(prefix="fglab-run-"))
    try:
        pipeline.save(tmp)
        return {
            p.relative_to(tmp).as_posix(): p.read_bytes()
            for p in sorted(tmp.rglob("*"))
            if p.is_file()
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_pipeline_files(files: dict[str, bytes]):
    """A :class:`RetrievalPipeline` from :func:`pipeline_files`'s output (via a temporary copy)."""
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
    """Batch of rows (dict of columns) -> ``{"row", "vector", "error"}``."""

    def __init__(self, pipeline, featurizer: ImageFeaturizer | None = None,
                 cache_dir: str | Path | None = None):
        self.pipeline = pipeline
        self.featurizer = featurizer
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
            featurizer = self.featurizer or default_image_featurizer()
            paths = [Path(str(v)) for v in values]
            if self.cache_dir is None:
                found, failed = featurizer(paths, pipeline.image_view)
            else:
                found, failed = featurizer(paths, pipeline.image_view, cache_dir=self.cache_dir)
            return np.asarray(pipeline.encode_image_features(found)), failed
        if kind not in KINDS:
            raise ValueError(f"row kind must be one of {', '.join(KINDS)}, got {kind!r}")
        matrix = np.vstack([np.asarray(f, dtype=np.float64) for f in features])
        if kind == "image-features":
            return np.asarray(pipeline.encode_image_features(matrix)), {}
        return np.asarray(pipeline.method.encode_texts(matrix)), {}


def embed_batches(
    embedder: Callable[[dict], dict],
    rows: list[dict],
    progress: Callable[[int], None] | None = None,
) -> Iterator[Embedded]:
    """``embedder`` over ``rows`` in this process, batch by batch."""
    for start in range(0, len(rows), BATCH):
        chunk = rows[start : start + BATCH]
        out = embedder({c: [r[c] for r in chunk] for c in COLUMNS})
        if progress:
            progress(len(chunk))
        yield out["row"], out["vector"], list(out["error"])
