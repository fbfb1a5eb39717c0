"""The search service under a bounded load: N concurrent clients send M requests on loopback.

Starts ``fglab serve INDEX`` in its own process, waits for ``/health``, then sends text
queries (and image queries, when the index's model reads image files and ``--image-share`` is
above 0) from this process with ``--clients`` threads, each holding one keep-alive
connection. Reports requests/s, latency p50/p99 and every non-200 answer. With
``--image-share`` the text-only load runs first and the mixed load second on the same server,
and the text queries' p99 under uploads is reported against the text-only p99 of the run.

    .venv/bin/python benchmarks/service_load.py --index runs/eng-wiki-index

Prints a table and writes JSON (default ``results/bench/service_load.json``). The server and
the clients share this machine's cores, and so does anything else running: compare with care.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from search_end_to_end import start_server, stop_server

QUERIES = (
    "naval battle in the pacific",
    "a painting in a museum",
    "football match",
    "a rock band on stage",
    "an old castle on a hill",
    "birds in a forest",
    "a president giving a speech",
    "the geography of a river valley",
    "a cathedral",
    "soldiers in the first world war",
    "a film actor",
    "a new school for children",
)


def image_payload(index: Path) -> bytes | None:
    """One of the collection's own images, for image queries."""
    from fglab.index.store import EmbeddingIndex

    loaded = EmbeddingIndex.load(index, vectors=False)
    root = Path(loaded.info["collection_root"])
    for item in loaded.items:
        if item.image_path and (root / item.image_path).is_file():
            return (root / item.image_path).read_bytes()
    return None


def client(base: str, jobs: list[int], image: bytes | None, share: float, out: list) -> None:
    rng = np.random.default_rng(jobs[0] if jobs else 0)
    with httpx.Client(base_url=base, timeout=60) as http:
        for job in jobs:
            start = time.perf_counter()
            if image is not None and rng.random() < share:
                kind = "image"
                response = http.post(
                    "/search/image", files={"file": ("q.jpg", image)}, data={"k": "10"}
                )
            else:
                kind = "text"
                response = http.post(
                    "/search/text", json={"query": QUERIES[job % len(QUERIES)], "k": 10}
                )
            out.append((kind, response.status_code, (time.perf_counter() - start) * 1000))


def run_load(base: str, args, image: bytes | None, share: float) -> dict:
    results: list[tuple[str, int, float]] = []
    jobs = [list(range(i, args.requests, args.clients)) for i in range(args.clients)]
    threads = [
        threading.Thread(target=client, args=(base, j, image, share, results)) for j in jobs
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    times = np.array([r[2] for r in results])
    statuses = Counter(r[1] for r in results)
    by_kind = {}
    for kind in sorted({r[0] for r in results}):
        t = np.array([r[2] for r in results if r[0] == kind])
        by_kind[kind] = {
            "requests": len(t),
            "p50_ms": float(np.percentile(t, 50)),
            "p99_ms": float(np.percentile(t, 99)),
        }
    return {
        "requests": len(results),
        "clients": args.clients,
        "seconds": seconds,
        "requests_per_s": len(results) / seconds,
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
        "errors": sum(n for status, n in statuses.items() if status != 200),
        "statuses": {str(k): v for k, v in statuses.items()},
        "by_kind": by_kind,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="an index from `fglab index`")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument(
        "--image-share",
        type=float,
        default=0.0,
        help="fraction of image queries, when the model reads image files",
    )
    parser.add_argument("--out", type=Path, default=Path("results/bench/service_load.json"))
    args = parser.parse_args()
    # every client may upload at once: measure throughput, not the server's upload bound
    server, base, _ = start_server(args.index, "--max-uploads", str(args.clients))
    try:
        health = httpx.get(base + "/health").json()
        image = image_payload(args.index) if health["image_search"] else None
        for query in QUERIES[: max(1, args.warmup)]:
            httpx.post(base + "/search/text", json={"query": query, "k": 10}, timeout=60)
        # text alone first, then (with --image-share) the mixed load on the same server, so
        # that the text p99 under uploads is compared with one measured in the same run
        result = run_load(base, args, image, 0.0)
        if args.image_share > 0 and image is not None:
            result["mixed"] = run_load(base, args, image, args.image_share)
            text_alone = result["by_kind"]["text"]["p99_ms"]
            result["mixed"]["text_p99_vs_text_only"] = (
                result["mixed"]["by_kind"]["text"]["p99_ms"] / text_alone
            )
    finally:
        stop_server(server)
    result["index"] = str(args.index)
    result["collection"] = health["collection"]
    result["image_share"] = args.image_share
    print("| load | requests | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for name, run in (("text only", result), ("mixed", result.get("mixed"))):
        if run is None:
            continue
        print(
            f"| {name} | {run['requests']} | {run['requests_per_s']:.0f} | "
            f"{run['p50_ms']:.1f} | {run['p99_ms']:.1f} | {run['errors']} |"
        )
        for kind, part in run["by_kind"].items():
            print(
                f"  {kind}: {part['requests']} requests, p50 {part['p50_ms']:.1f} ms, "
                f"p99 {part['p99_ms']:.1f} ms"
            )
    if "mixed" in result:
        ratio = result["mixed"]["text_p99_vs_text_only"]
        print(f"text p99 with {args.image_share:.0%} uploads / text only: {ratio:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    if result["errors"] or result.get("mixed", {}).get("errors"):
        sys.exit(1)


if __name__ == "__main__":
    main()
