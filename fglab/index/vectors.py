"""The faiss side of an index: one inner-product index per modality, keyed by int64 ids.

``IndexIDMap2`` (or IVF's own ids) lets items be added and removed without a rebuild. HNSW and
PQ cannot delete vectors: removed HNSW ids are excluded at search time with a faiss
``IDSelector``, removed PQ ids by fetching that many more results and dropping them (so many
removals slow ``pq``; ``ivfpq``, the automatic choice from 200k items, removes them).
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from fglab.hardware import machine_memory
from fglab.index.atomic import LISTING, IncompleteIndexError
from fglab.io import naming

logger = logging.getLogger(__name__)

KINDS = ("auto", "flat", "ivf", "hnsw", "pq", "ivfpq")
#: Kinds whose faiss index cannot remove vectors: removed ids are hidden at search time.
HIDE_REMOVED = ("hnsw", "pq")
#: The fewest vectors a PQ index trains its 16 centroids per sub-quantizer on.
PQ_MIN_TRAIN = 128
#: Kinds with PQ codes: fewer than PQ_MIN_TRAIN items of a modality get ``flat`` instead.
TRAINED_CODES = ("pq", "ivfpq")
#: From this many items in one modality on, ``kind="auto"`` picks ``ivfpq`` over exact search:
#: codes in memory scanned a few lists at a time, full vectors on disk for the re-ranking,
#: removals removed (:mod:`fglab.index.refined`; ``benchmarks/search_end_to_end.py``).
AUTO_APPROXIMATE_FROM = 200_000
#: The share of the machine's memory ``auto`` lets one modality's searched vectors take.
MEMORY_FRACTION = 0.5
#: Errors a faiss write message may end with (its ``strerror``), mapped back to their errno.
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                 errno.EISDIR, errno.ENOTDIR, errno.ENOENT, errno.EFBIG, errno.EIO)


def set_search_threads(threads: int) -> None:
    """OpenMP threads faiss may use for searches made from the calling thread."""
    faiss.omp_set_num_threads(threads)


@dataclass
class IndexSettings:
    """How the faiss indexes are built and searched."""

    kind: str = "auto"
    nlist: int | None = None  # IVF lists; default ~4 sqrt(n)
    nprobe: int = 32
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    pq_k_factor: int = 32  # PQ: re-rank this many x k fast-scan candidates exactly
    recall_target: float = 0.95  # ivfpq: nprobe and re-rank depth tuned to this recall@10
    #: Bytes a modality's searched vectors may hold in memory, for ``auto``'s choice (default:
    #: MEMORY_FRACTION of this machine's memory).
    max_memory: int | None = None

    def memory_budget(self) -> int:
        return self.max_memory or int(MEMORY_FRACTION * machine_memory())

    def resolved_kind(self, n: int, sharded: bool = False, dim: int = 0) -> str:
        """The kind for ``n`` items of ``dim`` of a modality. ``auto``: exact search while
        there are fewer than 200k items and their float32 vectors fit the memory budget, else
        ``ivfpq`` (a ValueError if even its codes do not fit). A sharded index has no ``ivfpq``
        yet (its vectors file is not split by shard): auto gives ``pq`` there, whatever the
        budget (its shards' memory is the cluster's)."""
        if self.kind not in KINDS:
            raise ValueError(f"index kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if sharded and self.kind == "ivfpq":
            raise ValueError("kind ivfpq is not available for a sharded index; use --kind pq, "
                             "ivf or flat with --shards / --ray")
        if self.kind in TRAINED_CODES and n < PQ_MIN_TRAIN:
            # e.g. a handful of texts added to an image index: exact search for them (a
            # quantizer trained on them would fail to load with its segment)
            logger.warning("%d items are too few to train %s codes (>= %d): exact search for "
                           "them", n, self.kind, PQ_MIN_TRAIN)
            return "flat"
        if self.kind != "auto":
            return self.kind
        if sharded:
            return "pq" if n >= AUTO_APPROXIMATE_FROM else "flat"
        budget = self.memory_budget()
        if n < AUTO_APPROXIMATE_FROM and 4 * dim * n <= budget:
            return "flat"
        codes = n * (dim / 2 + 8)  # 4 bits a dimension, an 8-byte id
        if codes > budget:
            raise ValueError(
                f"{n:,} items of {dim} dimensions need about {codes / 2**30:.1f} GiB of codes "
                f"in memory, over the budget of {budget / 2**30:.1f} GiB: raise --max-memory "
                f"or spread the index over machines with --shards / --ray"
            )
        return "ivfpq"


def make_faiss_index(dim: int, kind: str, settings: IndexSettings, train: np.ndarray,
                     total: int | None = None):
    """An empty index of ``kind`` for inner products, keyed by int64 ids (IVF natively, the
    others through ``IndexIDMap2``); IVF is trained on ``train`` and, unless ``settings``
    fix it, gets as many lists as ``total`` items call for (default: as many as ``train``)."""
    total = max(total or 0, len(train))
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = settings.ef_construction
        inner.hnsw.efSearch = settings.ef_search
    elif kind == "ivf":
        nlist = settings.nlist or max(1, min(int(4 * np.sqrt(total)), len(train) // 39))
        inner = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        inner.train(np.ascontiguousarray(train, dtype=np.float32))
        inner.nprobe = min(settings.nprobe, nlist)
        # IVF keeps ids itself and removes by id; an IndexIDMap over it would renumber wrongly.
        return inner
    elif kind == "pq":
        inner = make_pq_index(dim, settings.pq_k_factor, train)
    elif kind == "ivfpq":
        from fglab.index.refined import RefinedIVF, default_nlist

        if len(train) < PQ_MIN_TRAIN:
            raise ValueError(f"an ivfpq index needs >= {PQ_MIN_TRAIN} vectors to train; got "
                             f"{len(train)} (use kind flat)")
        nlist = settings.nlist or default_nlist(total)
        return RefinedIVF.trained(dim, np.asarray(train, np.float32), nlist)
    else:
        raise ValueError(f"index kind must be one of {', '.join(KINDS[1:])}, got {kind!r}")
    return faiss.IndexIDMap2(inner)


def make_pq_index(dim: int, k_factor: int, train: np.ndarray):
    """4-bit codes of two dimensions each, scanned with SIMD lookups (faiss "fast scan"), then
    the best ``k_factor`` x k candidates re-ranked by their exact inner products; trained on
    ``train``. An odd dimension (e.g. fglab's embeddings plus an odd number of class
    posteriors) gets a zero column first, which leaves every inner product as it was."""
    if len(train) < PQ_MIN_TRAIN:
        raise ValueError(
            f"a pq index needs >= {PQ_MIN_TRAIN} vectors to train; got {len(train)} vectors "
            f"(use kind flat)"
        )
    padded = dim + dim % 2
    index = faiss.IndexRefineFlat(
        faiss.IndexPQFastScan(padded, padded // 2, 4, faiss.METRIC_INNER_PRODUCT)
    )
    index.k_factor = k_factor
    if padded != dim:
        index = faiss.IndexPreTransform(faiss.RemapDimensionsTransform(dim, padded, True), index)
    index.train(np.ascontiguousarray(train, dtype=np.float32))
    return index


@dataclass
class ModalityIndex:
    """The faiss index of one modality and the ids hidden in it (HNSW / PQ removals)."""

    faiss_index: object
    kind: str
    deleted: set[int] = field(default_factory=set)
    _hidden: np.ndarray | None = field(default=None, repr=False)  # ``deleted`` as an array

    def add(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        self.faiss_index.add_with_ids(vectors, keys)

    def remove(self, keys: list[int]) -> None:
        if self.kind in HIDE_REMOVED:
            self.deleted.update(keys)
            self._hidden = None
        else:
            self.faiss_index.remove_ids(np.asarray(keys, dtype=np.int64))

    def hidden(self) -> np.ndarray:
        if self._hidden is None:
            self._hidden = np.fromiter(self.deleted, dtype=np.int64, count=len(self.deleted))
        return self._hidden

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and ids of the top ``k``, best first (id -1 where fewer exist)."""
        if not self.deleted:
            return self.faiss_index.search(queries, k)
        hidden = self.hidden()
        if self.kind == "pq":
            fetch = min(k + len(hidden), self.faiss_index.ntotal)
            scores, ids = self.faiss_index.search(queries, fetch)
            keep = ~np.isin(ids, hidden)
            order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept ones first, in order
            ids = np.where(keep, ids, -1)
            return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
        selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(hidden))
        params = faiss.SearchParametersHNSW(sel=selector)
        params.efSearch = max(k, faiss.downcast_index(self.faiss_index.index).hnsw.efSearch)
        return self.faiss_index.search(queries, k, params=params)


def read_faiss(path: Path, dim: int):
    """The faiss index in ``path``; IncompleteIndexError naming the file if it cannot be read
    or holds vectors of another width than ``dim``."""
    try:
        faiss_index = faiss.read_index(str(path))
    except RuntimeError as error:
        lines = str(error).strip().splitlines()
        reason = (lines[0] if lines else type(error).__name__)[:200]
        raise IncompleteIndexError(
            f"{path} is not a readable faiss index ({reason}); build the index again"
        ) from error
    if faiss_index.d != dim:
        raise IncompleteIndexError(
            f"{path} holds {faiss_index.d}-d vectors, {LISTING} says {dim}; build the index again"
        )
    return faiss_index


def write_faiss(faiss_index, path: Path) -> None:
    """Write a faiss index to ``path``; any failure is an OSError naming ``path``.

    The bytes go through a Python file: ``faiss.write_index(index, path)`` reports a failed
    final flush (a disk filling up at its last buffer, or at all for a small index) only on
    stderr and returns, leaving a short or empty file behind. A faiss error (a RuntimeError
    with a long C++ message) becomes ``OSError(errno, "cannot write (reason)", path)``."""
    path = Path(path)
    try:
        with naming(path), open(path, "wb") as handle:  # a failed write or close names path
            faiss.write_index(faiss_index, faiss.PyCallbackIOWriter(handle.write))
    except RuntimeError as error:
        raise faiss_write_error(error, path) from error


def faiss_write_error(error: RuntimeError, path: Path) -> OSError:
    """A faiss write failure as a one-line OSError naming ``path``: the errno its message ends
    with where it names one (``... for writing: No space left on device``), and the message's
    own reason (after its source location) otherwise."""
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else type(error).__name__
    code = next((c for c in _WRITE_ERRNOS if message.rstrip(")").endswith(os.strerror(c))), None)
    if code is not None:
        return OSError(code, f"cannot write ({os.strerror(code)})", str(path))
    reason = message.rsplit("Error: ", 1)[-1]
    reason = reason.split(" failed: ", 1)[-1] if reason.startswith("'") else reason
    return OSError(None, f"cannot write ({reason[:200]})", str(path))
