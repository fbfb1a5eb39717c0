"""Texts per second of each sentence-embedding text view, in one run on the same texts.

Each view's encoder embeds the first N texts of a data set's training split (not through the
feature store: every text is computed), after one warm-up batch.

    python benchmarks/sentence_speed.py [--dataset chinese-news] [--n 256]
        [--views text:use,text:e5] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from fglab.data.root import resolve_data_root
from fglab.data.wikipedia import load_dataset
from fglab.features.sentence import _encoder
from fglab.io import atomic_write_text

BATCH = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="chinese-news")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--views", default="text:use,text:e5")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, resolve_data_root(args.data_root),
                           log_problems_found=False)
    texts = list(dataset.train.texts[: args.n])
    print(f"{len(texts)} {args.dataset} texts, median {np.median([len(t) for t in texts]):.0f} "
          f"characters; load average {os.getloadavg()[0]:.1f}")
    rows = []
    for view in args.views.split(","):
        encode = _encoder(view)
        encode(texts[:8])  # warm-up: model load, first allocation
        start = time.perf_counter()
        for i in range(0, len(texts), BATCH):
            encode(texts[i : i + BATCH])
        seconds = time.perf_counter() - start
        rows.append({"view": view, "texts": len(texts), "seconds": seconds,
                     "texts_per_s": len(texts) / seconds})
        print(f"| {view} | {len(texts) / seconds:.1f} texts/s |", flush=True)
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(
            {"dataset": args.dataset, "load_average_end": os.getloadavg(), "rows": rows},
            indent=2))


if __name__ == "__main__":
    main()
