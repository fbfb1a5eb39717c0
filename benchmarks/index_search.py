"""Search latency and recall@10 of exact, IVF, HNSW and PQ faiss indexes on random 256-d vectors.

For each gallery size: build every index kind, pick each approximate index's search setting
(nprobe, efSearch, k_factor) as the smallest reaching the target recall@10 on *tuning*
queries, then measure single-query latency (p50/p99, one query at a time as a service sends
them) and recall@10 against exact search on separate *evaluation* queries. Vectors are
unit-normalized, searched by inner product, and drawn either as a Gaussian mixture
(``clustered``, like real embeddings, which have structure) or isotropic (``uniform`` on the
sphere, the worst case). ``pq`` scans 4-bit product codes (two dimensions per sub-quantizer)
with faiss's SIMD fast scan and re-ranks the best ``k_factor`` x 10 candidates exactly: unlike
IVF and HNSW it needs no structure in the data, so it also serves the isotropic case.
HNSW is built only up to ``--hnsw-max`` items: on two shared cores its build of 1M vectors
takes far longer than the rest of the benchmark.

    .venv/bin/python benchmarks/index_search.py --sizes 100000,1000000

Prints a table and writes JSON (default ``results/bench/index_search.json``). Timings on a
shared machine are noisy: compare kinds within one run (the ``speedup`` column is the ratio
to exact search measured in the same run).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

from fglab.index.store import make_pq_index

RECALL_K = 10
NPROBES = (4, 8, 16, 32, 64, 128, 256, 512)
EF_SEARCHES = (16, 32, 64, 128, 256, 512)
K_FACTORS = (2, 4, 8, 16, 32, 64, 128, 256)
PARAMS = {"ivf": "nprobe", "hnsw": "efSearch", "pq": "k_factor"}


def vectors(
    n: int, dim: int, data: str, rng: np.random.Generator, centers=None, noise: float = 1.0
) -> np.ndarray:
    """Unit rows: isotropic (``uniform``) or a random center plus noise of norm ~``noise``."""
    if data == "uniform":
        x = rng.standard_normal((n, dim), dtype=np.float32)
    else:
        x = centers[rng.integers(0, len(centers), n)]
        x = x + noise * rng.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / RECALL_K for f, t in zip(found, truth, strict=True)])
    )


def latencies(index, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-query wall times (ms) and results, one query per call."""
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        _, ids = index.search(q[None], RECALL_K)
        times.append((time.perf_counter() - start) * 1000)
        found.append(ids[0])
    return np.array(times), np.array(found)


def build(kind: str, base: np.ndarray, args) -> tuple[object, float]:
    n, dim = base.shape
    start = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = args.nlist or int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = base[np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False)]
        index.train(sample)
    elif kind == "pq":  # the index fglab builds (k_factor is tuned below)
        sample = base[np.random.default_rng(0).choice(n, min(n, 100_000), replace=False)]
        index = make_pq_index(dim, K_FACTORS[0], sample)
    else:
        index = faiss.IndexHNSWFlat(dim, args.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = args.ef_construction
    index.add(base)
    return index, time.perf_counter() - start


def set_param(index, kind: str, value: int) -> None:
    if kind == "ivf":
        index.nprobe = value
    elif kind == "hnsw":
        index.hnsw.efSearch = value
    elif kind == "pq":
        index.k_factor = value


def tune(index, kind: str, tuning: np.ndarray, truth: np.ndarray, target: float) -> dict:
    """The smallest setting reaching ``target`` recall on the tuning queries (else the largest)."""
    if kind == "ivf":
        grid = [v for v in NPROBES if v <= index.nlist]
    else:
        grid = list(EF_SEARCHES if kind == "hnsw" else K_FACTORS)
    tried = []
    for value in grid:
        set_param(index, kind, value)
        _, ids = index.search(tuning, RECALL_K)
        tried.append({"value": value, "recall": recall_at_k(ids, truth)})
        if tried[-1]["recall"] >= target:
            break
    return {
        "param": PARAMS[kind],
        "chosen": tried[-1]["value"],
        "tried": tried,
    }


def run_size(n: int, args, rng: np.random.Generator) -> list[dict]:
    centers = vectors(args.clusters, args.dim, "uniform", rng) if args.data == "clustered" else None
    base = vectors(n, args.dim, args.data, rng, centers, args.noise)
    tuning = vectors(args.queries, args.dim, args.data, rng, centers, args.noise)
    evaluation = vectors(args.queries, args.dim, args.data, rng, centers, args.noise)
    faiss.omp_set_num_threads(args.threads)
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(base)
    truth_tuning = exact.search(tuning, RECALL_K)[1]
    truth_eval = exact.search(evaluation, RECALL_K)[1]
    rows = []
    for kind in args.kinds:
        if kind == "hnsw" and n > args.hnsw_max:
            print(f"  n={n}: hnsw skipped (build over --hnsw-max {args.hnsw_max})", flush=True)
            continue
        index, build_s = (exact, 0.0) if kind == "flat" else build(kind, base, args)
        setting = None if kind == "flat" else tune(index, kind, tuning, truth_tuning, args.target)
        if setting:
            set_param(index, kind, setting["chosen"])
        faiss.omp_set_num_threads(1)  # a service answers one query per request
        queries = evaluation[: args.flat_queries] if kind == "flat" else evaluation
        times, found = latencies(index, queries)
        faiss.omp_set_num_threads(args.threads)
        rows.append(
            {
                "n": n,
                "kind": kind,
                "build_s": round(build_s, 1),
                "setting": setting,
                "p50_ms": float(np.percentile(times, 50)),
                "p99_ms": float(np.percentile(times, 99)),
                "recall_at_10": recall_at_k(found, truth_eval[: len(queries)]),
                "queries": len(queries),
            }
        )
        print(
            f"  n={n} {kind}: p50 {rows[-1]['p50_ms']:.2f} ms, recall@10 "
            f"{rows[-1]['recall_at_10']:.3f}, build {build_s:.0f} s",
            flush=True,
        )
        if kind != "flat":
            del index
    flat = next((r for r in rows if r["kind"] == "flat"), None)
    for row in rows:
        row["speedup_vs_exact"] = flat["p50_ms"] / row["p50_ms"] if flat else None
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| n | kind | setting | build s | p50 ms | p99 ms | recall@10 | speedup |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        setting = f"{r['setting']['param']}={r['setting']['chosen']}" if r["setting"] else "exact"
        speed = f"{r['speedup_vs_exact']:.1f}x" if r["speedup_vs_exact"] else "-"
        lines.append(
            f"| {r['n']:,} | {r['kind']} | {setting} | {r['build_s']} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['recall_at_10']:.3f} | {speed} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--data", choices=("clustered", "uniform"), default="clustered")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=1.0, help="noise norm / center norm")
    parser.add_argument("--kinds", default="flat,ivf,hnsw,pq")
    parser.add_argument("--queries", type=int, default=300, help="tuning and evaluation each")
    parser.add_argument("--flat-queries", type=int, default=100)
    parser.add_argument("--target", type=float, default=0.95, help="recall@10 to tune for")
    parser.add_argument("--nlist", type=int, default=None, help="IVF lists (default 4 sqrt(n))")
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument(
        "--hnsw-max",
        type=int,
        default=200_000,
        help="skip HNSW above this size (its build is the slow part)",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads for building")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/bench/index_search.json"))
    args = parser.parse_args()
    args.kinds = [k.strip() for k in args.kinds.split(",")]
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows += run_size(n, args, rng)
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k != "out"}
    args.out.write_text(
        json.dumps(
            {"config": config, "rows": rows, "seconds": time.perf_counter() - started}, indent=2
        )
    )
    print(f"wrote {args.out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
