"""Ingest: reader -> embedder -> writer, one path for every index.

:func:`read_rows` gives a collection's rows, a :class:`Backend` embeds them (in this process
or on a cluster), and the vectors go to one :class:`EmbeddingIndex` (:func:`build_index`) or
to a sharded directory (:func:`build_sharded`, :func:`add_to_sharded_index`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from fglab.data.problems import printable
from fglab.features.image_files import ImageFeaturizer
from fglab.index.atomic import MODEL_DIR
from fglab.index.shards import add_to_sharded, write_sharded
from fglab.index.store import EmbeddingIndex, IndexSettings, Item
from fglab.ingest.backend import Backend, LocalBackend, Progress
from fglab.ingest.reader import (
    Row,
    collection_name,
    collection_root,
    collection_splits,
    read_rows,
)

logger = logging.getLogger(__name__)


def embed_rows(
    backend: Backend, pipeline, rows: list[Row], progress: Progress | None = None
) -> tuple[list[Item], np.ndarray, list[str]]:
    """Embed rows on ``backend``: the kept items (in row order), their vectors, and what was
    skipped (manifest images that could not be read); data set images that could not be read
    are embedded from zero features, with a warning."""
    vectors: np.ndarray | None = None
    errors: dict[int, str] = {}
    wire = [row.wire(number) for number, row in enumerate(rows)]
    for numbers, batch, failed in backend.embed(pipeline, wire, progress):
        batch = np.asarray(batch, dtype=np.float32)
        if vectors is None:
            vectors = np.zeros((len(rows), batch.shape[1]), dtype=np.float32)
        vectors[numbers] = batch
        errors.update({int(n): e for n, e in zip(numbers, failed, strict=True) if e})
    if vectors is None:
        raise ValueError("nothing to index")
    keep = np.ones(len(rows), dtype=bool)
    skipped = []
    for number, reason in sorted(errors.items()):
        row = rows[number]
        if row.skip_failed:
            keep[number] = False
            skipped.append(f"{row.where}: image unreadable ({reason})")
            logger.warning("%s: %s", printable(row.item.source), printable(skipped[-1], None))
        else:
            logger.warning("%s: %s (embedded from zero features)", printable(row.where, None),
                           printable(reason, None))
    items = [row.item for row, kept in zip(rows, keep, strict=True) if kept]
    return items, vectors[keep], skipped


def _embedded(backend: Backend, pipeline, collection, split_names: list[str],
              progress: Progress | None) -> tuple[list[Item], np.ndarray, list[str]]:
    rows, skipped = read_rows(pipeline, collection, split_names)
    if not rows:
        raise ValueError(f"{collection_name(collection)}: nothing to index")
    items, vectors, failed = embed_rows(backend, pipeline, rows, progress)
    if not items:
        raise ValueError(f"{collection_name(collection)}: nothing to index")
    return items, vectors, skipped + failed


def index_info(pipeline, collection, split_names: list[str], run_dir: Path | None) -> dict:
    """An index's provenance: the collection, its folder and splits, the run."""
    info = {
        "collection": collection_name(collection),
        "collection_root": str(collection_root(collection)),
        "splits": collection_splits(collection, split_names),
        "dataset": pipeline.dataset_name,
        "method": pipeline.method_name,
        "categories": list(pipeline.categories),
    }
    if run_dir is not None:
        info["run"] = str(Path(run_dir).resolve())
    return info


def check_same_folder(collection, info: dict) -> None:
    """Items added to an index must lie under the folder its collection lies under."""
    root = collection_root(collection)
    if str(root) != info.get("collection_root"):
        raise ValueError(
            f"{collection_name(collection)} lies under {root}, the index's collection under "
            f"{info.get('collection_root')}; items must come from the same folder"
        )


def build_index(
    pipeline,
    collection,
    split_names: Iterable[str] = ("test",),
    settings: IndexSettings | None = None,
    featurizer: ImageFeaturizer | None = None,
    progress: Progress | None = None,
    index: EmbeddingIndex | None = None,
    backend: Backend | None = None,
) -> tuple[EmbeddingIndex, list[str]]:
    """Embed a collection and add it to ``index`` (a new one by default). Returns the index
    and the skipped items' descriptions."""
    split_names = list(split_names)
    if index is not None:
        check_same_folder(collection, index.info)
    backend = backend or LocalBackend(featurizer)
    items, vectors, skipped = _embedded(backend, pipeline, collection, split_names, progress)
    if index is None:
        index = EmbeddingIndex(vectors.shape[1], settings,
                               index_info(pipeline, collection, split_names, None))
    start = 0
    for end in [*_modality_changes(items), len(items)]:  # one add per run of a modality
        index.add(items[start:end], vectors[start:end])
        start = end
    return index, skipped


def _modality_changes(items: list[Item]) -> list[int]:
    return [i for i in range(1, len(items)) if items[i].modality != items[i - 1].modality]


def build_sharded(
    backend: Backend,
    pipeline,
    collection,
    out: Path,
    shards: int,
    split_names: Iterable[str] = ("test",),
    settings: IndexSettings | None = None,
    progress: Progress | None = None,
    run_dir: Path | None = None,
) -> tuple[dict[str, int], list[str]]:
    """Embed a collection on ``backend`` and write a sharded index at ``out`` (atomically,
    with the pipeline under ``model/``). Returns the item counts per modality and the
    skipped items."""
    if shards < 1:
        raise ValueError(f"--shards must be at least 1, got {shards}")
    split_names = list(split_names)
    items, vectors, skipped = _embedded(backend, pipeline, collection, split_names, progress)
    counts = write_sharded(
        Path(out), items, vectors, shards, index_info(pipeline, collection, split_names, run_dir),
        settings, backend.map, write_extra=lambda tmp: pipeline.save(tmp / MODEL_DIR),
    )
    return counts, skipped


def add_to_sharded_index(
    backend: Backend, index_dir: Path, collection, split_names: Iterable[str] = ("test",),
    progress: Progress | None = None,
) -> tuple[dict[str, int], list[str]]:
    """Embed a collection with the index's own model and add it to a sharded index. Returns
    the added item counts per modality and the skipped items."""
    from fglab.pipeline import RetrievalPipeline

    current = EmbeddingIndex.load(Path(index_dir), vectors=False)  # verifies every file
    check_same_folder(collection, current.info)
    pipeline = RetrievalPipeline.load(Path(index_dir) / MODEL_DIR)
    rows, skipped = read_rows(pipeline, collection, split_names)
    present = current.items.keys_of_ids([row.item.id for row in rows])
    if present:  # refused before any embedding work
        raise ValueError(f"item id {next(iter(present))!r} is already in the index")
    items, vectors, failed = embed_rows(backend, pipeline, rows, progress)
    return add_to_sharded(current, items, vectors, backend.map), skipped + failed
