"""Scaling out on Ray, measured in one run on a loopback cluster: embedding throughput with one
and with two Ray Data workers (and in process, without Ray), and text-query latency through
the sharded Ray Serve router against the embedded index.

Embedding: the chinese-news images of ``--split`` (photos, EfficientNet-Lite0 features then
the trained run's image branch), each measurement with an empty feature cache so the model
runs on every image; the time includes starting the workers and loading the model in each.
Serving: the same collection (texts and images) as a 2-shard index served with ``--replicas``
replicas per shard (one per node of a two-node loopback cluster), against the unsharded flat
index of the same items in process; ``--queries`` text queries, one at a time, interleaved.

    .venv-cluster/bin/python benchmarks/cluster_scale.py --run runs/chinese-news-sm

Prints a markdown table and writes JSON (default ``results/bench/cluster_scale.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from fglab.cluster.backend import RayBackend
from fglab.cluster.serve import open_cluster_retriever, replica_nodes
from fglab.data.collection import load_collection
from fglab.index.store import IndexSettings
from fglab.ingest.backend import LocalBackend
from fglab.ingest.build import build_index, build_sharded, embed_rows
from fglab.ingest.reader import read_rows
from fglab.pipeline import RetrievalPipeline
from fglab.retriever import Retriever

QUERIES = ["球队在联赛中比赛", "经济增长和市场", "学校教育和学生", "保护生态环境", "部队官兵训练",
           "科学家研究新技术", "文化艺术展览", "总统会见外国领导人"]


def embed_throughput(backend, pipeline, rows: list) -> dict:
    started = time.perf_counter()
    items, _, _ = embed_rows(backend, pipeline, rows)
    seconds = time.perf_counter() - started
    return {"images": len(items), "seconds": round(seconds, 2),
            "images_per_s": round(len(items) / seconds, 1)}


def latencies(search, rounds: int) -> list[float]:
    times = []
    for number in range(rounds):
        started = time.perf_counter()
        search(QUERIES[number % len(QUERIES)])
        times.append((time.perf_counter() - started) * 1000)
    return times


def summary(times: list[float]) -> dict:
    return {"p50_ms": round(float(np.percentile(times, 50)), 3),
            "p99_ms": round(float(np.percentile(times, 99)), 3), "queries": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/chinese-news-sm"))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/bench/cluster_scale.json"))
    args = parser.parse_args()

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    pipeline = RetrievalPipeline.load(args.run)
    collection = load_collection("chinese-news", args.data_root)
    rows, _ = read_rows(pipeline, collection, [args.split])
    images = [r for r in rows if r.kind == "image-file"]
    node = {"num_cpus": 2, "object_store_memory": 128 * 1024**2}
    # the dashboard serves the state API that says where replicas run (``replica_nodes``)
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": True})
    cluster.add_node(**node)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    results: dict = {"cpus": os.cpu_count(), "split": args.split, "embedding": {}}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            results["embedding"]["in process (no Ray)"] = embed_throughput(
                LocalBackend(cache_dir=str(tmp / "local")), pipeline, images)
            for workers in (1, 2):
                backend = RayBackend(cluster.address, workers=workers,
                                     cache_dir=str(tmp / f"ray-{workers}"))
                results["embedding"][f"Ray Data, {workers} worker(s)"] = embed_throughput(
                    backend, pipeline, images)

            sharded = tmp / "sharded"
            flat_settings = IndexSettings(kind="flat")
            backend = RayBackend(cluster.address, workers=2, cpus_per_replica=0.25)
            build_sharded(backend, pipeline, collection, sharded, 2, [args.split],
                          flat_settings)
            embedded = Retriever(pipeline, build_index(pipeline, collection, [args.split],
                                                       flat_settings)[0])
            routed = open_cluster_retriever(sharded, backend, args.replicas)
            results["placement"] = replica_nodes(backend.apps)
            for retriever in (embedded, routed):
                retriever.limit_threads(1)
                latencies(retriever.search_text, 20)  # warm up
            timed = {"embedded (one flat index, in process)": [],
                     f"sharded (2 shards x {args.replicas} replicas, Ray Serve router)": []}
            for _ in range(max(1, args.queries // 50)):  # interleaved rounds
                for retriever, name in zip((embedded, routed), timed, strict=True):
                    timed[name] += latencies(retriever.search_text, 50)
            results["items"] = len(embedded.index)
            results["query_latency"] = {name: summary(t) for name, t in timed.items()}
            backend.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print("| embedding | images | seconds | images/s |\n|---|---|---|---|")
    for name, row in results["embedding"].items():
        print(f"| {name} | {row['images']} | {row['seconds']} | {row['images_per_s']} |")
    print(f"\n| text query ({results['items']} items) | p50 ms | p99 ms |\n|---|---|---|")
    for name, row in results["query_latency"].items():
        print(f"| {name} | {row['p50_ms']} | {row['p99_ms']} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
