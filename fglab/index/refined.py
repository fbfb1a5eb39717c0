"""The index kind for large collections: an inverted file of 4-bit fast-scan PQ codes in
memory, re-ranked with the full vectors from a memory-mapped file on disk.

faiss's ``IVF{nlist},PQ{d}x4fs`` holds 128 bytes a 256-d vector and scans only the
``nprobe`` lists nearest a query; removals are removed from its lists (``remove_ids``). The
best ``k x k_factor`` candidates are re-ranked by their exact inner products, read from
``MODALITY.vectors.npy`` (rows in key order, ``MODALITY.keys.npy``), which the server maps
rather than loads, as Qdrant and Milvus keep full vectors on disk: its memory is the codes,
the item table and what the OS caches. faiss's ``IndexRefine`` cannot do this re-ranking (it
needs its base's ids to be the refine storage's row numbers and keeps that storage in
memory); a served store's keys are consecutive, so a key's row is arithmetic and faiss's
``knn_inner_products_by_idx`` re-ranks from the mapping, and any other store is re-ranked
with numpy. ``nprobe`` and ``k_factor`` are tuned at save time to a recall@10 target on
a sample of the collection's own vectors against exact search (:func:`tune`). Where the lists
prune little (vectors without cluster structure), the tuning may keep a flat scan of
half-size codes instead, ``IDMap,PQ{d/2}x4fs``: faiss's ``IndexPQFastScan`` removes by id
through its ``IndexIDMap`` and scans 0.3-0.4 ms faster than an IVF of one list at 1M.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

#: Vectors kept in memory while an index is built before they go to a spill file.
SPILL_BYTES = 256 * 1024 * 1024
#: Bytes read at a time when a served store's file is read into the OS's cache.
PREFETCH_BYTES = 64 * 1024 * 1024
#: Training sample per inverted list (faiss warns below 39).
TRAIN_PER_LIST = 64
TUNE_QUERIES = 200
#: A setting reaches the recall target when mean - z x standard error does (one-sided 95%).
LOWER_BOUND_Z = 1.645
#: Rows scored at a time by the tuning's exact search: its scores and their sort order take 12
#: bytes a row and query (150 MB for 200 queries here; 600 MB at 262,144 rows).
EXACT_ROWS = 1 << 16
#: Candidates re-ranked at the least (a query for one result still compares a few dozen).
MIN_CANDIDATES = 32
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
#: Re-rank depths (x k) tried, steps of about sqrt(2): at 1M isotropic vectors 24 reached
#: 0.95 where 16 did not, and saves a quarter of 32's re-ranking.
K_FACTORS = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)


def default_nlist(n: int) -> int:
    """A power of two near sqrt(n): 1,024 lists at 1M vectors, 4,096 at 10M."""
    return int(2 ** round(np.log2(max(1.0, np.sqrt(max(n, 1))))))


class SpilledRows:
    """Rows of float32 vectors in a file: read by position (never mapped, so a pass over all
    of them does not grow the process's resident memory by the file's size)."""

    def __init__(self, handle, offset: int, count: int, dim: int):
        self.handle, self.offset, self.count, self.dim = handle, offset, count, dim

    def __len__(self) -> int:
        return self.count

    def read(self, start: int, stop: int) -> np.ndarray:
        row = 4 * self.dim
        data = os.pread(self.handle.fileno(), (stop - start) * row, self.offset + start * row)
        return np.frombuffer(data, dtype=np.float32).reshape(-1, self.dim)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return np.vstack([self.read(int(r), int(r) + 1) for r in rows]) if len(rows) else \
            np.zeros((0, self.dim), np.float32)


class MappedRows(SpilledRows):
    """A served store's rows: a read-only mapping (``MADV_RANDOM``), a query's candidates
    gathered in C. The pages a mapping touched count as the process's resident memory, and
    the kernel maps the file cache's large folios whole: touching one row mapped 1.8-2.2 MB
    (ext4), and 300 queries over a 2M store had mapped all 2 GB. So the 2 MiB blocks lookups
    touched are counted, and once they reach :data:`RELEASE_BYTES` they are dropped from the
    mapping (``MADV_DONTNEED``, which only unmaps: the OS's file cache keeps them). A store
    of at most that size stays mapped: a query then re-ranks without a page fault."""

    #: The most the kernel maps for one faulting row (a PMD-sized folio).
    BLOCK_BYTES = 2 * 1024 * 1024
    #: At most this much is left mapped between releases (beyond one lookup's own rows).
    RELEASE_BYTES = 1024 * 1024 * 1024

    def __init__(self, handle, offset: int, count: int, dim: int, first_key: int | None = None):
        super().__init__(handle, offset, count, dim)
        #: The key of row 0 where the rows' keys are consecutive (a saved store's, removals
        #: included): a key's row is then found by arithmetic.
        self.first_key = first_key
        self.mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self.mapping.madvise(mmap.MADV_RANDOM)
        self.rows = np.frombuffer(self.mapping, dtype=np.float32, count=count * dim,
                                  offset=offset).reshape(count, dim)
        self.touched = np.zeros(len(self.mapping) // self.BLOCK_BYTES + 1, dtype=bool)

    def prefetch(self, budget: int) -> bool:
        """Read the file through once, so that the OS caches it and a query's re-ranking
        never waits on the disk, if it is at most ``budget`` bytes. Read by position (not
        through the mapping): the process's resident memory does not grow."""
        size = os.fstat(self.handle.fileno()).st_size
        if size > budget:
            return False
        with contextlib.suppress(AttributeError, OSError):  # a hint; the reads follow anyway
            os.posix_fadvise(self.handle.fileno(), 0, size, os.POSIX_FADV_SEQUENTIAL)
        for start in range(0, size, PREFETCH_BYTES):
            os.pread(self.handle.fileno(), min(PREFETCH_BYTES, size - start), start)
        return True

    def take(self, rows: np.ndarray) -> np.ndarray:
        out = self.rows[rows]
        self.touch(rows)
        return out

    def touch(self, rows: np.ndarray) -> None:
        """Count the blocks ``rows`` (negative ones ignored) lie in, and unmap them all once
        they reach the bound."""
        if len(self.mapping) <= self.RELEASE_BYTES:
            return  # the whole file stays mapped
        rows = np.asarray(rows, np.int64).ravel()
        touched = self.touched  # another thread may swap it meanwhile: a release comes later
        touched[(self.offset + rows[rows >= 0] * 4 * self.dim) // self.BLOCK_BYTES] = True
        if np.count_nonzero(touched) * self.BLOCK_BYTES >= self.RELEASE_BYTES:
            self.touched = np.zeros_like(touched)
            self.mapping.madvise(mmap.MADV_DONTNEED)


def write_npy(path: Path, chunks, count: int, dim: int) -> None:
    """An .npy file of ``count`` float32 rows from ``chunks``, written through a plain file
    (a writable mapping would keep every written page in the writer's resident memory)."""
    with open(path, "wb") as out:
        np.lib.format.write_array_header_1_0(
            out, {"descr": "<f4", "fortran_order": False, "shape": (count, dim)})
        for chunk in chunks:
            out.write(np.ascontiguousarray(chunk, dtype=np.float32).tobytes())


class VectorStore:
    """Full vectors by key, for re-ranking: parts of (sorted keys, rows). While an index is
    built they are kept in memory, then spilled to files read by position; a loaded store is
    its ``.vectors.npy`` mapped without read-ahead (:class:`MappedRows`: a plain mapping
    read ahead around every row and kept it resident, 1 GB after 50 queries at 1M)."""

    def __init__(self, dim: int, spill_dir: str | None = None):
        self.dim = dim
        self.parts: list[tuple[np.ndarray, object]] = []
        self.spill_dir = spill_dir
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(k) for k, _ in self._all_parts())

    def append(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self._pending.append((np.asarray(keys, np.int64), np.asarray(vectors, np.float32)))
        if sum(v.nbytes for _, v in self._pending) >= SPILL_BYTES:
            self._spill()

    def _spill(self) -> None:
        """Move the pending rows to a file of their own (deleted once closed)."""
        keys = np.concatenate([k for k, _ in self._pending])
        handle = tempfile.TemporaryFile(  # noqa: SIM115 (open as long as the store lives)
            dir=self.spill_dir, prefix="fglab-vectors-")
        for _, vectors in self._pending:
            handle.write(np.ascontiguousarray(vectors).tobytes())
        handle.flush()
        self.parts.append((keys, SpilledRows(handle, 0, len(keys), self.dim)))
        self._pending = []

    def _all_parts(self) -> list[tuple[np.ndarray, object]]:
        return self.parts + self._pending

    def chunks(self, size: int = 1 << 18):
        """(keys, rows) in key order, a bounded number of rows at a time."""
        for keys, rows in self._all_parts():
            for start in range(0, len(keys), size):
                stop = min(len(keys), start + size)
                block = rows.read(start, stop) if isinstance(rows, SpilledRows) \
                    else np.asarray(rows[start:stop])
                yield keys[start:stop], block

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The rows of ``keys`` (zeros for a key it does not hold)."""
        keys = np.asarray(keys, np.int64)
        out = np.zeros((len(keys), self.dim), np.float32)
        for part_keys, rows in self._all_parts():
            if not len(part_keys):
                continue
            chosen, wanted = _rows_of(part_keys, keys, getattr(rows, "first_key", None))
            if not len(chosen):
                continue
            if isinstance(rows, MappedRows):
                out[chosen] = rows.take(wanted)
            elif isinstance(rows, SpilledRows):  # read one by one: in file order
                order = np.argsort(wanted)
                out[chosen[order]] = rows.take(wanted[order])
            else:
                out[chosen] = rows[wanted]
        return out

    def consecutive_rows(self) -> MappedRows | None:
        """The mapped rows of a loaded store whose keys are consecutive (a key's row is then
        ``key - first_key``); None for any other store."""
        if len(self.parts) != 1 or self._pending:
            return None
        rows = self.parts[0][1]
        return rows if isinstance(rows, MappedRows) and rows.first_key is not None else None

    def save(self, folder: Path, name: str) -> None:
        """``name.keys.npy`` and ``name.vectors.npy`` in key order, written chunk by chunk."""
        parts = self._all_parts()
        keys = np.concatenate([k for k, _ in parts]) if parts else np.zeros(0, np.int64)
        if np.any(np.diff(keys) < 0):
            raise ValueError("vector store keys are not in order")
        np.save(folder / f"{name}.keys.npy", keys, allow_pickle=False)
        write_npy(folder / f"{name}.vectors.npy", (rows for _, rows in self.chunks()),
                  len(keys), self.dim)

    @classmethod
    def load(cls, folder: Path, name: str, dim: int) -> VectorStore:
        store = cls(dim)
        keys = np.load(folder / f"{name}.keys.npy", allow_pickle=False)
        handle = open(folder / f"{name}.vectors.npy", "rb")  # noqa: SIM115 (the store's life)
        offset = npy_rows_offset(handle, len(keys), dim)
        consecutive = len(keys) and int(keys[-1]) - int(keys[0]) == len(keys) - 1 and \
            bool(np.all(keys[1:] > keys[:-1]))
        store.parts.append((keys, MappedRows(handle, offset, len(keys), dim,
                                             int(keys[0]) if consecutive else None)))
        return store


def _rows_of(part_keys: np.ndarray, keys: np.ndarray, first_key: int | None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``keys`` the sorted ``part_keys`` hold (their positions in ``keys``), and at
    which rows: by arithmetic from ``first_key`` where the part's keys are consecutive from
    it, else by binary search (it probes the key array about 20 times a key, out of the CPU's
    cache: 0.3 ms for a query's 320 candidates among 1M keys)."""
    if first_key is not None:
        rows = keys - first_key
        held = (rows >= 0) & (rows < len(part_keys))
    else:
        rows, held = _search(part_keys, keys)
    return np.flatnonzero(held), rows[held]


def _search(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``keys`` is, or would be, in the non-empty ``sorted_keys`` (clipped to its
    last position), and whether it is there."""
    rows = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return rows, sorted_keys[rows] == keys


def read_npy_rows(path: Path, count: int, dim: int) -> SpilledRows:
    """The ``count`` float32 rows of width ``dim`` in the .npy file ``path``, read by position
    (so reading them all in chunks never holds the file)."""
    handle = open(path, "rb")  # noqa: SIM115 (closed with the rows' owner)
    return SpilledRows(handle, npy_rows_offset(handle, count, dim), count, dim)


def npy_rows_offset(handle, count: int, dim: int) -> int:
    """Where the rows start in the open .npy file ``handle``, after checking its header holds
    ``count`` C-ordered float32 rows of ``dim`` (a ValueError naming the file if not)."""
    read = {(1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(handle))
    if read is None:
        handle.close()
        raise ValueError(f"{handle.name} is not an .npy file this reads")
    shape, fortran, dtype = read(handle)
    if shape != (count, dim) or dtype != np.float32 or fortran:
        handle.close()
        raise ValueError(f"{handle.name} holds {shape} {dtype}; {count} rows of {dim} float32 "
                         "expected")
    return handle.tell()


class RefinedIVF:
    """Stands where a faiss index stands in :class:`~fglab.index.vectors.ModalityIndex`: an
    ``IVF{nlist},PQ{m}x4fs`` index (or the tuning's flat ``IDMap,PQ{m}x4fs``) re-ranked from
    the store."""

    def __init__(self, ivf, store: VectorStore, k_factor: int = 8):
        self.ivf = ivf
        self.store = store
        self.k_factor = k_factor
        self.d = store.dim
        self.tuning: dict = {}  # what :func:`tune` measured, kept in the index's listing
        #: Whether a removal may have left codes past the end of a block (see
        #: :func:`clear_block_ends`): after one, and for a loaded index, whose history is
        #: unknown; cleared before the next addition.
        self.stale_block_ends = False

    @classmethod
    def trained(cls, dim: int, train: np.ndarray, nlist: int | None = None,
                spill_dir: str | None = None) -> RefinedIVF:
        """An empty index whose quantizers are trained on (a sample of) ``train``."""
        padded = dim + dim % 2
        nlist = nlist or default_nlist(len(train))
        nlist = max(1, min(nlist, len(train) // 39 or 1))
        ivf = faiss.index_factory(padded, f"IVF{nlist},PQ{padded}x4fs",
                                  faiss.METRIC_INNER_PRODUCT)
        sample = train[np.random.default_rng(0).permutation(len(train))[: TRAIN_PER_LIST * nlist]]
        ivf.train(_padded(sample, padded))
        ivf.nprobe = min(32, nlist)
        return cls(ivf, VectorStore(dim, spill_dir))

    @property
    def ntotal(self) -> int:
        return self.ivf.ntotal

    @property
    def nprobe(self) -> int:
        return self.ivf.nprobe if isinstance(self.ivf, faiss.IndexIVF) else 1

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if isinstance(self.ivf, faiss.IndexIVF):  # a flat scan has no lists to choose
            self.ivf.nprobe = max(1, min(int(value), self.ivf.nlist))

    def add_with_ids(self, vectors: np.ndarray, keys: np.ndarray) -> None:
        if self.stale_block_ends:
            clear_block_ends(self.ivf)
            self.stale_block_ends = False
        self.ivf.add_with_ids(_padded(vectors, self.ivf.d), np.asarray(keys, np.int64))
        self.store.append(keys, vectors)

    def remove_ids(self, keys: np.ndarray) -> None:
        self.ivf.remove_ids(np.asarray(keys, np.int64))  # its rows stay on disk, never found
        self.stale_block_ends = True

    def search(self, queries: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        return self.search_with(queries, k, self.nprobe, self.k_factor)

    def search_with(self, queries: np.ndarray, k: int, nprobe: int, k_factor: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` by exact inner product among ``k x k_factor`` candidates of the codes."""
        queries = np.ascontiguousarray(queries, np.float32)
        fetch = max(k, min(max(k * k_factor, MIN_CANDIDATES), self.ntotal))
        params = faiss.SearchParametersIVF(nprobe=min(nprobe, self.ivf.nlist)) \
            if isinstance(self.ivf, faiss.IndexIVF) else None  # fast scan takes no parameters
        _, candidates = self.ivf.search(_padded(queries, self.ivf.d), fetch, params=params)
        ranked = self._rerank_mapped(queries, candidates, k)
        return ranked if ranked is not None else self._rerank(queries, candidates, k)

    def _rerank_mapped(self, queries: np.ndarray, candidates: np.ndarray, k: int
                       ) -> tuple[np.ndarray, np.ndarray] | None:
        """The re-ranking of a loaded store whose keys are consecutive, where a key's row is
        arithmetic: faiss's ``knn_inner_products_by_idx`` reads the rows from the mapping and
        keeps the top ``k`` in C++ (0.07 ms for 240 candidates of 1M, against 0.25 ms for
        :meth:`_rerank`). None for any other store, or a candidate past its rows."""
        rows = self.store.consecutive_rows()
        if rows is None:
            return None
        first = rows.first_key
        # faiss pads a query's candidates with -1 at the end, and stops reading at a negative
        subset = np.where(candidates >= 0, candidates - first, -1) if first else candidates
        if subset.max(initial=-1) >= rows.count:
            return None  # never read past the mapping
        scores = np.empty((len(queries), k), np.float32)
        found = np.empty((len(queries), k), np.int64)
        width = subset.shape[1]
        faiss.knn_inner_products_by_idx(  # the stride given: -1 crashed, not "nsubset"
            faiss.swig_ptr(queries), faiss.swig_ptr(rows.rows), faiss.swig_ptr(subset),
            self.d, len(queries), rows.count, width, k, faiss.swig_ptr(scores),
            faiss.swig_ptr(found), width)
        rows.touch(subset)
        if found.min() < 0:
            scores[found < 0] = -np.inf
        return scores, (np.where(found >= 0, found + first, -1) if first else found)

    def _rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top ``k`` of each query's candidates, their rows read from the store."""
        scores = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        for row, found in enumerate(candidates):
            found = found[found >= 0]
            exact = self.store.get(found) @ queries[row]
            best = np.argsort(-exact, kind="stable")[:k]
            scores[row, : len(best)], ids[row, : len(best)] = exact[best], found[best]
        return scores, ids

    def prefetch(self, budget: int) -> bool:
        """Have the OS cache the full vectors (:meth:`MappedRows.prefetch`); False where they
        are over ``budget`` bytes or not yet on disk."""
        parts = self.store.parts
        return bool(parts) and all(
            rows.prefetch(budget) for _, rows in parts if isinstance(rows, MappedRows))

    def save(self, folder: Path, name: str, write) -> None:
        """``name.faiss`` (through ``write(index, path)``) plus the vector store."""
        write(self.ivf, folder / f"{name}.faiss")
        self.store.save(folder, name)

    @classmethod
    def load(cls, folder: Path, name: str, dim: int, ivf, k_factor: int) -> RefinedIVF:
        index = cls(ivf, VectorStore.load(folder, name, dim), k_factor)
        index.stale_block_ends = True  # saved after removals by an earlier version, perhaps
        return index


def clear_block_ends(index) -> None:
    """Zero the codes past the end of each list's last block (each inverted list's, or the
    flat scan's one list). faiss 1.15's fast-scan ``remove_ids`` moves codes forward but
    leaves the old ones past the new end, and a later ``add`` writes its codes' 4-bit halves
    over them: the first vectors added to a block after a removal got codes that no longer
    found them (5,400 vectors, every tenth removed, 600 added: 4 to 13 of them lost). Written
    here through faiss's own ``CodePacker`` (``pack_1`` of a zero code), as faiss has no fix."""
    if isinstance(index, faiss.IndexIVF):
        ivf = faiss.extract_index_ivf(index)
        packer, lists = ivf.get_CodePacker(), ivf.invlists
        ends = ((i, lists.list_size(i)) for i in range(ivf.nlist))
        for number, size in ends:
            if size % packer.nvec:
                codes = lists.get_codes(number)
                _zero_past(packer, codes, size)
                lists.release_codes(number, codes)
    else:
        codes = faiss.downcast_index(index.index)
        packer = codes.get_CodePacker()
        if codes.ntotal % packer.nvec:
            _zero_past(packer, codes.codes.data(), codes.ntotal)


def _zero_past(packer, block, size: int) -> None:
    """Zero the codes at positions ``size`` up to the end of its block in the packed blocks
    starting at ``block`` (a swig pointer)."""
    zero = np.zeros(packer.code_size, np.uint8)
    for position in range(size, (size // packer.nvec + 1) * packer.nvec):
        packer.pack_1_c(faiss.swig_ptr(zero), position, block)


def tune(index: RefinedIVF, target: float, k: int = 10, seed: int = 0) -> dict:
    """The fastest layout and (``nprobe``, ``k_factor``) reaching ``target`` recall@k against
    exact search, measured on a sample of the index's own live vectors as queries (each
    query's own item left out). Where the inverted lists prune little at the target (vectors
    without cluster structure need most of them), a flat scan of half-size codes is built from
    the stored vectors and tuned too, and the faster of the two kept (:data:`FULL_SCAN_FROM`).
    Sets the choice on ``index`` and returns what was measured."""
    live = live_keys(index.ivf)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(live, min(TUNE_QUERIES, len(live)), replace=False))
    queries = index.store.get(chosen)
    truth = exact_top_k(index.store, queries, k + 1, live)
    best = _tune_depths(index, queries, truth, chosen, target, k)
    if _worth_a_full_scan(index.ivf, best):
        flat = RefinedIVF(flat_scan(index, live), index.store)
        other = _tune_depths(flat, queries, truth, chosen, target, k)
        if other["reached"] and (not best["reached"]
                                 or other["ms_per_query"] < best["ms_per_query"]):
            other["instead_of"] = {key: best[key] for key in
                                   ("layout", "nprobe", "k_factor", "ms_per_query")}
            index.ivf, best = flat.ivf, other
    index.nprobe, index.k_factor = best["nprobe"], best["k_factor"]
    return best


def _tune_depths(index: RefinedIVF, queries: np.ndarray, truth: np.ndarray, chosen: np.ndarray,
                 target: float, k: int) -> dict:
    """For each re-rank depth the fewest lists that reach the target, found by doubling (a
    deeper re-rank is tried only with fewer lists); the fastest that reached it, else the one
    closest to it. A setting reaches the target when its recall's one-sided 95% lower bound
    over the sample's queries does (200 queries measure a recall near 0.95 to about +-0.01)."""
    best, closest, most = None, None, lists(index.ivf)
    for k_factor in K_FACTORS:
        reached, last = None, -1.0
        for nprobe in (p for p in NPROBES if p <= most):
            started = time.perf_counter()
            found = _search_batched(index, queries, k + 1, nprobe, k_factor)
            seconds = (time.perf_counter() - started) / len(queries)
            recalls = _recalls(found, truth, chosen, k)
            recall = float(np.mean(recalls))
            lower = recall - LOWER_BOUND_Z * float(np.std(recalls)) / np.sqrt(len(recalls))
            trial = {"nprobe": nprobe, "k_factor": k_factor, "recall_at_10": recall,
                     "recall_lower_bound": round(lower, 4),
                     "ms_per_query": round(1000 * seconds, 3)}
            closest = max(closest or trial, trial, key=lambda t: t["recall_at_10"])
            if lower >= target:
                reached = trial
                break
            if nprobe >= 8 and recall - last < 0.002:
                break  # more lists add nothing: the re-rank depth is what falls short
            last = recall
        if reached is not None:
            if best is None or reached["ms_per_query"] < best["ms_per_query"]:
                best = reached
            if reached["nprobe"] == 1:
                break
            most = reached["nprobe"] // 2  # a deeper re-rank pays only with fewer lists
    chosen_trial = best or closest
    return {**chosen_trial, "layout": layout(index.ivf), "target": target,
            "reached": best is not None}


#: Share of the lists the tuning may need before a flat scan of half-size codes is tried too:
#: vectors without cluster structure (isotropic) need every list, and a scan of all 128-byte
#: codes took 8.0 ms a query at 1M against 3.1 ms for 64-byte codes with a deeper re-rank
#: (recall 0.987); on clustered vectors one list of 1,024 did (0.3 ms).
FULL_SCAN_FROM = 0.25


def _worth_a_full_scan(ivf, tuned: dict) -> bool:
    if not isinstance(ivf, faiss.IndexIVF):
        return False  # a flat scan already
    full_codes = ivf.d == faiss.downcast_index(ivf).pq.M  # not an older index's half codes
    return ivf.nlist > 1 and full_codes and tuned["nprobe"] >= FULL_SCAN_FROM * ivf.nlist


def lists(ivf) -> int:
    """The inverted lists of ``ivf`` (1 for a flat scan)."""
    return ivf.nlist if isinstance(ivf, faiss.IndexIVF) else 1


def layout(ivf) -> str:
    """The faiss factory string of an ``IVF{nlist},PQ{m}x4fs`` or ``IDMap,PQ{m}x4fs`` index."""
    if isinstance(ivf, faiss.IndexIVF):
        return f"IVF{ivf.nlist},PQ{faiss.downcast_index(ivf).pq.M}x4fs"
    return f"IDMap,PQ{faiss.downcast_index(ivf.index).pq.M}x4fs"


def flat_scan(index: RefinedIVF, live: np.ndarray) -> faiss.Index:
    """``IDMap,PQ{d/2}x4fs`` over the live rows of ``index``'s store (read a block at a time,
    in key order), trained on a sample of them. (An IVF of one list scans the same codes
    0.3-0.4 ms slower at 1M; ``IndexPQFastScan`` removes rows in order, and its ``IndexIDMap``
    their ids with them.)"""
    padded = index.ivf.d
    flat = faiss.index_factory(padded, f"IDMap,PQ{padded // 2}x4fs", faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(live, min(len(live), 1 << 16), replace=False)
    flat.train(_padded(index.store.get(np.sort(sample)), padded))
    for keys, block in index.store.chunks():
        kept = _among(keys, live)
        if kept.any():
            flat.add_with_ids(_padded(block[kept], padded), keys[kept])
    return flat


def _among(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` are in ``sorted_keys``, by binary search (``np.isin`` would sort all
    of ``sorted_keys`` again for every block: ten million keys, a few hundred blocks)."""
    return _search(sorted_keys, keys)[1] if len(sorted_keys) else np.zeros(len(keys), bool)


def live_keys(ivf) -> np.ndarray:
    """The ids an IVF or IDMap index holds (removed ones are gone from it), sorted."""
    if not isinstance(ivf, faiss.IndexIVF):
        return np.sort(faiss.vector_to_array(ivf.id_map))
    inverted = faiss.extract_index_ivf(ivf).invlists
    parts = [faiss.rev_swig_ptr(inverted.get_ids(i), inverted.list_size(i)).copy()
             for i in range(inverted.nlist) if inverted.list_size(i)]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _search_batched(index: RefinedIVF, queries: np.ndarray, k: int, nprobe: int,
                    k_factor: int) -> np.ndarray:
    """Searches a few queries at a time: faiss's fast scan builds a lookup table per query and
    list probed, GBs for hundreds of queries over thousands of lists."""
    return np.vstack([index.search_with(queries[start : start + 8], k, nprobe, k_factor)[1]
                      for start in range(0, len(queries), 8)])


def exact_top_k(store: VectorStore, queries: np.ndarray, k: int,
                live: np.ndarray | None = None) -> np.ndarray:
    """The keys of each query's exact top ``k`` among ``live`` keys (default all), over every
    part, chunk by chunk."""
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_keys = np.full((len(queries), k), -1, np.int64)
    for keys, block in store.chunks(EXACT_ROWS):
        scores = queries @ block.T
        if live is not None:
            scores[:, ~_among(keys, live)] = -np.inf
        some = min(k, scores.shape[1])
        part = np.argpartition(-scores, some - 1, axis=1)[:, :some]
        merged_scores = np.hstack([best_scores, np.take_along_axis(scores, part, 1)])
        merged_keys = np.hstack([best_keys, keys[part]])
        top = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(merged_scores, top, 1)
        best_keys = np.take_along_axis(merged_keys, top, 1)
    return best_keys


def _recalls(found: np.ndarray, truth: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """Each query's recall@k, its own item left out."""
    hits = []
    for row, key in enumerate(own):
        want = [t for t in truth[row] if t != key][:k]
        got = [f for f in found[row] if f != key][:k]
        hits.append(len(set(want) & set(got)) / max(1, len(want)))
    return np.asarray(hits)


def _padded(vectors: np.ndarray, width: int) -> np.ndarray:
    """Vectors with zero columns up to ``width`` (an odd dimension's PQ needs an even one)."""
    vectors = np.ascontiguousarray(vectors, np.float32)
    if vectors.shape[1] == width:
        return vectors
    return np.ascontiguousarray(np.pad(vectors, ((0, 0), (0, width - vectors.shape[1]))))
