"""Readers under a loop of full rewrites: every read must see the old index or the new one.

A writer process rewrites one index directory in a loop (``EmbeddingIndex.save`` over itself,
which swaps the whole folder), alternating between two versions that differ in their item
count; this process loads the directory ``--reads`` times meanwhile (vectors and all, every
file checked against its SHA-256) and counts the reads that saw version A, version B, or
failed. Before readers re-read a folder replaced under them, about one read in 5,000 failed
with "does not match index.json (damaged or partly written)".

    .venv/bin/python benchmarks/reader_consistency.py --reads 10000

Writes JSON (default ``results/bench/reader_consistency.json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from fglab.index.store import EmbeddingIndex, IndexSettings, Item


def version(items: int, seed: int) -> EmbeddingIndex:
    """An index of ``items`` text items with random 64-d unit vectors."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((items, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = EmbeddingIndex(64, IndexSettings(kind="flat"))
    index.add([Item(f"txt-{i}", "text", str(i), text=f"text {i}") for i in range(items)], vectors)
    return index


def rewrite_forever(path: str, sizes: tuple[int, int], stop) -> None:
    """The writer: full rewrites, alternating the two versions, until ``stop`` is set."""
    versions = [version(size, seed) for seed, size in enumerate(sizes)]
    turn = 0
    while not stop.is_set():
        versions[turn % 2].save(Path(path))
        turn += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000, help="items of version A (B: one less)")
    parser.add_argument("--out", type=Path,
                        default=Path("results/bench/reader_consistency.json"))
    args = parser.parse_args()
    sizes = (args.items, args.items - 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index"
        version(sizes[0], 0).save(path)
        stop = multiprocessing.Event()
        writer = multiprocessing.Process(target=rewrite_forever, args=(str(path), sizes, stop))
        writer.start()
        seen: Counter = Counter()
        failures: list[str] = []
        started = time.perf_counter()
        try:
            for _ in range(args.reads):
                try:
                    seen[len(EmbeddingIndex.load(path))] += 1
                except (ValueError, OSError) as error:
                    failures.append(str(error).splitlines()[0][:200])
        finally:
            stop.set()
            writer.join()
        seconds = time.perf_counter() - started
        generation = json.loads((path / "index.json").read_text())["generation"]
    result = {
        "reads": args.reads, "seconds": round(seconds, 1),
        "saw_version_a": seen[sizes[0]], "saw_version_b": seen[sizes[1]],
        "saw_other": sum(n for size, n in seen.items() if size not in sizes),
        "failed": len(failures), "first_failures": failures[:5],
        "rewrites_during_the_reads": generation - 1,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
