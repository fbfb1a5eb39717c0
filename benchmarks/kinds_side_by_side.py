"""Two or more index kinds over the same collection, timed side by side query by query.

``search_end_to_end.py`` times one kind after another, so a change in the machine's load
between them (these machines are shared) reads as a difference between kinds. Here each
``--kind`` is built over the same synthetic vectors (``search_end_to_end.build``), loaded, and
served by its own ``fglab serve``; then every query goes to each kind in turn, through each
path (raw faiss, ``Retriever.search_text``, ``POST /search/text``), for ``--rounds`` passes,
the order of the kinds alternating from query to query. p50/p99 per kind and path, recall@10
against exact search, and each kind's p50 over the first kind's.

    .venv/bin/python benchmarks/kinds_side_by_side.py --size 1000000 --data isotropic,clustered \\
        --kind auto,pq

Writes JSON (default ``results/bench/kinds_side_by_side.json``) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from search_end_to_end import (
    build,
    common_arguments,
    exact_neighbours,
    load_average,
    query_paths,
    query_texts,
    recall,
    start_server,
    stop_server,
    summary,
    synthetic_pipeline,
)

from fglab.index.store import EmbeddingIndex
from fglab.index.vectors import set_search_threads
from fglab.pipeline import RetrievalPipeline
from fglab.retriever import MODEL_DIR, Retriever

PATHS = ("raw faiss", "Retriever", "HTTP")


def side_by_side(data: str, args, queries: list[str], work: Path) -> dict:
    folders = {kind: work / f"{data}-{kind}" for kind in args.kind}
    built, loaded, servers = {}, {}, {}
    try:
        for kind, folder in folders.items():
            folder.mkdir()
            print(f"{data}, {kind}: building ...", flush=True)
            built[kind] = build(args.size, args, folder, data, kind)
            index = EmbeddingIndex.load(folder / "index")
            retriever = Retriever(RetrievalPipeline.load(folder / "index" / MODEL_DIR), index)
            retriever.limit_threads(1)  # as `fglab serve` does by default
            loaded[kind] = (index, retriever)
            servers[kind] = start_server(folder / "index")[:2]
        set_search_threads(1)
        first = next(iter(folders.values()))
        vectors = np.ascontiguousarray(loaded[args.kind[0]][1].pipeline.encode_texts(queries),
                                       dtype=np.float32)
        truth = exact_neighbours(first / "x.npy", vectors)  # the same vectors for every kind
        clients = {kind: httpx.Client(base_url=base, timeout=60)
                   for kind, (_, base) in servers.items()}
        paths = {kind: query_paths(*loaded[kind], clients[kind], queries, vectors)
                 for kind in args.kind}
        times = {kind: {path: [] for path in PATHS} for kind in args.kind}
        found = {kind: {path: [] for path in PATHS} for kind in args.kind}
        print(f"{data}: timing ...", flush=True)
        for i in range(min(20, len(queries))):  # warm-up: jieba, page cache, connections
            for kind in args.kind:
                for path in PATHS:
                    paths[kind][path](i)
        started_load = load_average()
        for round_ in range(args.rounds):
            for i in range(len(queries)):
                order = args.kind if (i + round_) % 2 == 0 else args.kind[::-1]
                for path in PATHS:
                    for kind in order:
                        start = time.perf_counter()
                        result = paths[kind][path](i)
                        times[kind][path].append((time.perf_counter() - start) * 1000)
                        if round_ == 0:
                            found[kind][path].append(result)
        for client in clients.values():
            client.close()
        ended_load = load_average()
    finally:
        for server, _ in servers.values():
            stop_server(server)
        for folder in folders.values():
            shutil.rmtree(folder, ignore_errors=True)
    kinds = {}
    for kind in args.kind:
        index = loaded[kind][0]
        kinds[kind] = {
            "kind": index.kinds["image"],
            "tuning": getattr(index.modalities["image"].faiss_index, "tuning", None),
            "build_s": built[kind].get("build_s"),
            "paths": {path: {**summary(times[kind][path]),
                             "recall_at_10": recall(found[kind][path], truth)}
                      for path in PATHS},
        }
    base = kinds[args.kind[0]]["paths"]
    for kind in args.kind:
        for path in PATHS:
            kinds[kind]["paths"][path]["p50_over_first"] = (
                kinds[kind]["paths"][path]["p50_ms"] / base[path]["p50_ms"])
    return {"data": data, "n": args.size, "kinds": kinds,
            "load_average": [started_load, ended_load]}


def print_table(results: list[dict], first: str) -> None:
    print(f"\n| data | kind | path | p50 ms | p99 ms | recall@10 | p50 over {first} |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        for kind, measured in result["kinds"].items():
            for path, row in measured["paths"].items():
                print(f"| {result['data']} | {kind} ({measured['kind']}) | {path} "
                      f"| {row['p50_ms']:.2f} "
                      f"| {row['p99_ms']:.2f} | {row['recall_at_10']:.3f} "
                      f"| {row['p50_over_first']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--data", default="isotropic,clustered", type=lambda s: s.split(","))
    parser.add_argument("--kind", default=["auto", "pq"], type=lambda s: s.split(","))
    common_arguments(parser, Path("results/bench/kinds_side_by_side.json"))
    args = parser.parse_args()
    queries = query_texts(synthetic_pipeline(args.run), args.queries, args.data_root)
    results = []
    with tempfile.TemporaryDirectory(prefix="fglab-kinds-", dir=args.work) as work:
        for data in args.data:
            results.append(side_by_side(data, args, queries, Path(work)))
    output = {"queries": len(queries), "rounds": args.rounds, "cpus": os.cpu_count(),
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=2))
    print_table(results, args.kind[0])
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
