"""The feature store at scale, on synthetic vectors: write throughput, the time to open a
store (read every shard's keys), to look up a batch of keys, and to read their vectors back
(checksums verified on first read), against the per-file layout it replaces.

    .venv/bin/python benchmarks/feature_store.py [--items 100000] [--dim 1280] [--out FILE]

Prints a table and writes JSON (default ``results/bench/feature_store.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fglab.features.store import FeatureStore
from fglab.io import atomic_write_text


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--legacy-items", type=int, default=5_000,
                        help="items written in the per-file layout, for comparison")
    parser.add_argument("--out", type=Path, default=Path("results/bench/feature_store.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(args.items)]
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore("bench", Path(tmp))
        chunk = 4096
        seconds = 0.0
        for start in range(0, args.items, chunk):
            vectors = rng.standard_normal((min(chunk, args.items - start), args.dim),
                                          dtype=np.float32)
            took, _ = timed(lambda s=start, v=vectors: store.put_many(keys[s : s + len(v)], v))
            seconds += took
        took, _ = timed(store.flush)
        seconds += took
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*.arrow"))
        rows["write vectors/s"] = args.items / seconds
        rows["write MB/s"] = size / seconds / 1e6
        rows["shards"] = len(list(Path(tmp).rglob("*.arrow")))
        rows["open s (read all keys)"], reopened = timed(lambda: FeatureStore("bench", Path(tmp)))
        wanted = list(rng.permutation(keys))
        rows[f"lookup s ({args.items} keys)"], _ = timed(lambda: reopened.locate(wanted))
        rows["first read s (verify + copy all vectors)"], _ = timed(
            lambda: reopened.missing(wanted, args.dim))
        rows["second read s"], _ = timed(lambda: reopened.missing(wanted, args.dim))
        legacy = Path(tmp) / "legacy"
        n = min(args.legacy_items, args.items)
        for key in keys[:n]:
            path = legacy / key[:2] / f"{key}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, rng.standard_normal(args.dim, dtype=np.float32))
        took, _ = timed(lambda: [np.load(legacy / k[:2] / f"{k}.npy") for k in keys[:n]])
        rows[f"per-file layout: read s per {args.items} (from {n})"] = took * args.items / n
    width = max(len(k) for k in rows)
    for name, value in rows.items():
        print(f"{name:<{width}}  {value:,.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps({"items": args.items, "dim": args.dim, **rows},
                                           indent=2) + "\n")


if __name__ == "__main__":
    main()
