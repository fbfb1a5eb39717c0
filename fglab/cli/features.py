"""``fglab features NAME [--view image:efficientnet-lite0]``: extract (and cache) a data set's
image features, printing every image that failed with its id and reason."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fglab.data.wikipedia import load_dataset
from fglab.features.image_views import IMAGE_VIEWS, extract_image_features


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("features", help="extract and cache image features")
    parser.add_argument("name", help="data set name under the data root, or a folder")
    parser.add_argument(
        "--view", default="image:efficientnet-lite0",
        help=f"image view, one of: {', '.join(IMAGE_VIEWS)} (default: image:efficientnet-lite0)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="feature cache (default: $FGLAB_CACHE/features, else ~/.cache/fglab/features)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.name, args.data_root, log_problems_found=False)  # printed below
    if not dataset.has_images:
        raise ValueError(f"data set {dataset.name!r} has no images/ folder to extract from")
    skipped = [p for p in dataset.problems if p.kind in ("missing_image", "unreadable_image")]
    for problem in skipped:
        print(f"skipped by the loader: {problem}")
    total_failed = 0
    for split in (dataset.train, dataset.test):
        start = time.perf_counter()
        features, failures = extract_image_features(
            split.image_paths, args.view, args.cache_dir, progress=True
        )
        seconds = time.perf_counter() - start
        for row, reason in failures.items():
            print(f"[{split.name}] image {split.image_ids[row]} "
                  f"(text {split.text_ids[row]}): {reason}")
        total_failed += len(failures)
        print(
            f"{dataset.name} {split.name}: {len(split)} images -> {features.shape[1]}-d "
            f"{args.view} in {seconds:.1f} s ({len(split) / max(seconds, 1e-9):.0f} images/s), "
            f"{len(failures)} failed"
        )
    print(f"{len(skipped)} pairs skipped by the loader, {total_failed} images failed "
          "(zero features)")
    return 0
