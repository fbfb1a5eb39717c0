"""Image feature extraction throughput on the chinese-news images: fglab's extractor (cold
cache, then warm) against a plain loop measured in the same run.

The plain loop is what one writes first: PIL full-size decode, resize to 224x224, one image at
a time through EfficientNet-Lite0 (eager float32, batch norms unfolded). It runs on a sample
of images before and after the fglab run, and its rate is the mean of the two, so that load
from other processes on a shared machine weighs on both sides alike; the ratio is the number
to compare across machines.

    .venv/bin/python benchmarks/image_features.py [--plain-images 150] [--out FILE]

Prints a table and writes JSON (default ``results/bench/image_features.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fglab.data.wikipedia import load_dataset
from fglab.features.image import load_network
from fglab.features.image_views import extract_image_features, image_extractor
from fglab.io import atomic_write_text

VIEW = "image:efficientnet-lite0"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the DataLoader workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def plain_loop(paths: list[Path], size: int = 224) -> tuple[float, float]:
    """Images per second of the naive loop and its CPU milliseconds per image (model load
    excluded)."""
    network = load_network(image_extractor(VIEW), fold=False)  # float32, NCHW, eager
    cpu = cpu_seconds()
    start = time.perf_counter()
    with torch.no_grad():
        for path in paths:
            image = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
            network.extract_features(pixels / 127.5 - 1.0).mean(dim=(2, 3))
    wall = time.perf_counter() - start
    return len(paths) / wall, (cpu_seconds() - cpu) * 1000 / len(paths)


def timed_extract(paths: list[Path], cache_dir: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU milliseconds per image, failures."""
    cpu = cpu_seconds()
    start = time.perf_counter()
    _, failures = extract_image_features(paths, VIEW, cache_dir, progress=True)
    wall = time.perf_counter() - start
    return wall, (cpu_seconds() - cpu) * 1000 / len(paths), len(failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--plain-images", type=int, default=150,
                        help="images in each of the two plain-loop samples (default 150)")
    parser.add_argument("--out", type=Path, default=Path("results/bench/image_features.json"))
    args = parser.parse_args()
    dataset = load_dataset("chinese-news", args.data_root)
    paths = [p for split in (dataset.train, dataset.test) for p in split.image_paths]
    rng = np.random.default_rng(0)
    sample = [paths[i] for i in rng.permutation(len(paths))[: 2 * args.plain_images]]
    load_before = os.getloadavg()[0]
    plain_before, plain_cpu_before = plain_loop(sample[: args.plain_images])
    with tempfile.TemporaryDirectory(prefix="fglab-bench-cache-") as cache:
        cold, cold_cpu, failed = timed_extract(paths, Path(cache))
        warm, _, _ = timed_extract(paths, Path(cache))
    plain_after, plain_cpu_after = plain_loop(sample[args.plain_images :])
    plain = (plain_before + plain_after) / 2
    plain_cpu = (plain_cpu_before + plain_cpu_after) / 2
    extractor = image_extractor(VIEW)
    result = {
        "images": len(paths),
        "failed": failed,
        "extractor": extractor.cache_name,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "plain_images_per_s": {"before": plain_before, "after": plain_after, "mean": plain},
        "cold_seconds": cold,
        "cold_images_per_s": len(paths) / cold,
        "warm_seconds": warm,
        "warm_images_per_s": len(paths) / warm,
        "cold_vs_plain": len(paths) / cold / plain,
        # CPU time is less sensitive to other processes than wall time
        "plain_cpu_ms_per_image": plain_cpu,
        "cold_cpu_ms_per_image": cold_cpu,
        "cpu_ratio": plain_cpu / cold_cpu,
    }
    print(f"\n{'run':<34}{'seconds':>9}{'images/s':>10}{'CPU ms/image':>14}")
    print(f"{'plain loop (sample, mean of 2)':<34}{'':>9}{plain:>10.1f}{plain_cpu:>14.1f}")
    print(f"{'fglab cold cache':<34}{cold:>9.1f}{len(paths) / cold:>10.1f}{cold_cpu:>14.1f}")
    print(f"{'fglab warm cache':<34}{warm:>9.2f}{len(paths) / warm:>10.0f}")
    print(f"cold / plain: {result['cold_vs_plain']:.2f}x in images/s, "
          f"{result['cpu_ratio']:.2f}x in CPU time per image")
    print(f"({len(paths)} images, {failed} failed, "
          f"{extractor.cache_name}, load average {load_before:.1f} -> "
          f"{result['load_average_after']:.1f} on {os.cpu_count()} CPUs)")
    atomic_write_text(args.out, json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
