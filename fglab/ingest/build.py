"""Ingest: reader -> embedder -> writer, one path for every index.

:func:`read_rows` gives a collection's rows, a :class:`Backend` embeds them (in this process
or on a cluster), and the vectors go to one :class:`EmbeddingIndex` (:func:`build_index`) or
to a sharded directory (:func:`build_sharded`, :func:`add_to_sharded_index`). A sharded
directory is written without the vectors passing through this process: the backend stages
them in the build folder and tasks on the backend write each shard
(:mod:`fglab.index.shards`); only the items' metadata, counts and checksums come back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from fglab.data.problems import printable
from fglab.features.image_files import ImageFeaturizer
from fglab.index.atomic import MODEL_DIR, atomic_directory
from fglab.index.shards import STAGING, ShardPlan, add_staged, write_staged
from fglab.index.store import EmbeddingIndex, IndexSettings, Item
from fglab.ingest.backend import Backend, LocalBackend, Progress
from fglab.ingest.embedder import BATCH
from fglab.ingest.reader import (
    Row,
    collection_counts,
    collection_name,
    collection_root,
    collection_splits,
    read_rows,
    row_blocks,
)

logger = logging.getLogger(__name__)
#: Rows per embedding batch (one staged part per shard) and at most per Ray Data block when no
#: row is an image file: texts embed fast, so larger batches mean fewer, larger parts; a
#: smaller collection still comes in about 16 blocks, for the workers to share.
TEXT_BATCH = 1024
TEXT_BLOCK = 8 * TEXT_BATCH
#: Rows embedded at a time by :func:`build_index`, and the fewest a modality's first add holds
#: (it trains an IVF's lists: 262,144 rows suit the 4,096 lists of ten million items).
ADD_ROWS = 1 << 18


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
    keep, skipped = kept_rows(rows, errors)
    if keep.all():  # a block's vectors are 256 MB: no copy unless rows were dropped
        return [row.item for row in rows], vectors, skipped
    items = [row.item for row, kept in zip(rows, keep, strict=True) if kept]
    return items, vectors[keep], skipped


def kept_rows(rows: list[Row], errors: dict[int, str]) -> tuple[np.ndarray, list[str]]:
    """Which rows stay after embedding, and what was skipped: a row whose input failed is
    dropped where its collection skips failures (manifest images), else kept as embedded from
    zero features; both with a warning."""
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
    return keep, skipped


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
    """Embed a collection and add it to ``index`` (a new one by default), a block of rows at a
    time: the vectors held here stay bounded whatever the collection's size (the index itself
    spills what it keeps to disk where its kind does, see :mod:`fglab.index.refined`).
    Returns the index and the skipped items' descriptions."""
    split_names = list(split_names)
    if index is not None:
        check_same_folder(collection, index.info)
    backend = backend or LocalBackend(featurizer)
    name = collection_name(collection)
    blocks, skipped = row_blocks(pipeline, collection, split_names, ADD_ROWS)
    adder = _ChunkedAdder(index, settings, index_info(pipeline, collection, split_names, None),
                          collection_counts(collection, split_names))
    for rows in blocks:
        items, vectors, failed = embed_rows(backend, pipeline, rows, progress)
        skipped += failed
        adder.put(items, vectors)
    if adder.finish() == 0:
        raise ValueError(f"{name}: nothing to index")
    return adder.index, skipped


class _ChunkedAdder:
    """Adds embedded items to an index in chunks of at least ``ADD_ROWS`` per modality (the
    first chunk of a modality trains its quantizers), holding no more than that per modality."""

    def __init__(self, index: EmbeddingIndex | None, settings: IndexSettings | None, info: dict,
                 counts: dict[str, int]):
        self.index, self.settings, self.info, self.counts = index, settings, info, dict(counts)
        self.pending: dict[str, tuple[list[Item], list[np.ndarray]]] = {}
        self.added = 0
        if index is not None:
            index.expect(self.counts)

    def put(self, items: list[Item], vectors: np.ndarray) -> None:
        if self.index is None and len(items):  # its width is known from the first vectors
            self.index = EmbeddingIndex(vectors.shape[1], self.settings, self.info)
            self.index.expect(self.counts)
        start = 0
        for end in [*_modality_changes(items), len(items)]:  # one run of a modality at a time
            if end > start:
                held = self.pending.setdefault(items[start].modality, ([], []))
                held[0].extend(items[start:end])
                held[1].append(vectors[start:end])
                if len(held[0]) >= ADD_ROWS:
                    self._flush(items[start].modality)
            start = end

    def _flush(self, modality: str) -> None:
        items, parts = self.pending.pop(modality, ([], []))
        if items:
            self.index.add(items, parts[0] if len(parts) == 1 else np.vstack(parts))
            self.added += len(items)

    def finish(self) -> int:
        for modality in list(self.pending):
            self._flush(modality)
        return self.added


def _modality_changes(items: list[Item]) -> list[int]:
    return [i for i in range(1, len(items)) if items[i].modality != items[i - 1].modality]


def _wire_blocks(rows: list[Row], plan: ShardPlan, size: int) -> Iterator[pa.Table]:
    """The rows as Arrow blocks of ``size`` (row numbers ascending): their wire columns plus
    each row's shard and whether it is in the training sample."""
    for start in range(0, len(rows), size):
        part, end = rows[start : start + size], min(start + size, len(rows))
        yield pa.table({
            "row": pa.array(np.arange(start, end), pa.int64()),
            "kind": pa.array([r.kind for r in part], pa.string()),
            "value": pa.array([r.value for r in part], pa.string()),
            "features": pa.array([r.features for r in part], pa.list_(pa.float64())),
            "shard": pa.array(plan.shard[start:end], pa.int32()),
            "sample": pa.array(plan.sample[start:end], pa.bool_()),
        })


def embed_staged(backend: Backend, pipeline, rows: list[Row], plan: ShardPlan, tmp: Path,
                 progress: Progress | None = None) -> list[str]:
    """Embed ``rows`` on ``backend``, their vectors staged in the build folder ``tmp`` (never
    brought here); sets ``plan.dim`` and ``plan.keep``. Returns what was skipped."""
    images = any(row.kind == "image-file" for row in rows)
    text_block = min(TEXT_BLOCK, max(TEXT_BATCH, -(-len(rows) // 16)))
    batch, block = (BATCH, BATCH) if images else (TEXT_BATCH, text_block)
    errors: dict[int, str] = {}
    blocks = _wire_blocks(rows, plan, block)
    for numbers, failed, dim in backend.embed_staged(pipeline, blocks, tmp / STAGING, batch,
                                                      progress):
        plan.dim = dim
        errors.update({int(n): e for n, e in zip(numbers, failed, strict=True) if e})
    if plan.dim is None:
        raise ValueError("nothing to index")
    plan.keep, skipped = kept_rows(rows, errors)
    return skipped


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
    with the pipeline under ``model/``): the backend's workers stage the vectors and write the
    shards, this process holds only the items' metadata. Returns the item counts per modality
    and the skipped items."""
    if shards < 1:
        raise ValueError(f"--shards must be at least 1, got {shards}")
    split_names, settings = list(split_names), settings or IndexSettings()
    name = collection_name(collection)
    rows, skipped = read_rows(pipeline, collection, split_names)
    if not rows:
        raise ValueError(f"{name}: nothing to index")
    info = index_info(pipeline, collection, split_names, run_dir)
    plan = ShardPlan.of([row.item for row in rows], shards, settings)
    with atomic_directory(Path(out)) as tmp:
        pipeline.save(tmp / MODEL_DIR)
        skipped += embed_staged(backend, pipeline, rows, plan, tmp, progress)
        if not plan.keep.any():
            raise ValueError(f"{name}: nothing to index")
        counts = write_staged(tmp, plan, shards, settings, info, backend.map)
    return counts, skipped


def add_to_sharded_index(
    backend: Backend, index_dir: Path, collection, split_names: Iterable[str] = ("test",),
    progress: Progress | None = None,
) -> tuple[dict[str, int], list[str]]:
    """Embed a collection with the index's own model and add it to a sharded index, staged as
    :func:`build_sharded` stages. Returns the added item counts per modality and the skipped
    items."""
    from fglab.pipeline import RetrievalPipeline

    current = EmbeddingIndex.load(Path(index_dir), vectors=False)  # verifies every file
    check_same_folder(collection, current.info)
    pipeline = RetrievalPipeline.load(Path(index_dir) / MODEL_DIR)
    rows, skipped = read_rows(pipeline, collection, split_names)
    present = current.items.keys_of_ids([row.item.id for row in rows])
    if present:  # refused before any embedding work
        raise ValueError(f"item id {next(iter(present))!r} is already in the index")
    if not rows:
        raise ValueError("nothing to index")
    shards = len(current.origin.listing["shards"])
    new = {row.item.modality for row in rows} - set(current.kinds)
    plan = ShardPlan.of([row.item for row in rows], shards, current.settings, trained=new)
    with atomic_directory(current.origin.path) as tmp:
        skipped += embed_staged(backend, pipeline, rows, plan, tmp, progress)
        counts = add_staged(current, tmp, plan, backend.map)
    return counts, skipped
