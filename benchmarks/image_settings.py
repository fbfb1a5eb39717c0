"""Which EfficientNet-Lite0 settings keep retrieval quality: input size, crop, precision.

For each setting, extracts the chinese-news train images (cached) and reports the 5-fold
cross-validated accuracy of a logistic regression on the train split only (the image side of
semantic matching), plus the extraction time. Test images are never used.

    python benchmarks/image_settings.py [--data-root DIR] [--out results/image_settings.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fglab.data.wikipedia import load_dataset
from fglab.features.image import ImageExtractor, extract
from fglab.features.store import FeatureStore
from fglab.io import atomic_write_text

SETTINGS = {
    "224 squash fp32": ImageExtractor(image_size=224, precision="float32"),
    "224 squash bf16": ImageExtractor(image_size=224, precision="bfloat16"),
    "224 crop bf16": ImageExtractor(image_size=224, crop=True, precision="bfloat16"),
    "192 squash bf16": ImageExtractor(image_size=192, precision="bfloat16"),
    "160 squash bf16": ImageExtractor(image_size=160, precision="bfloat16"),
}


def cv_accuracy(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[float, float]:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    scores = cross_val_score(model, features, labels, cv=folds)
    return float(scores.mean()), float(scores.std())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", type=Path, default=Path("results/image_settings.json"))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    args = parser.parse_args()
    split = load_dataset("chinese-news", args.data_root).train
    rows = {}
    print(f"{'setting':<18}{'cv accuracy':>16}{'extract s':>11}")
    for name in args.settings.split(","):
        extractor = SETTINGS[name]
        start = time.perf_counter()
        features, failures = extract(
            split.image_paths, extractor, FeatureStore(extractor.cache_name)
        )
        seconds = time.perf_counter() - start
        mean, std = cv_accuracy(features, split.labels)
        rows[name] = {
            "cv_accuracy": mean,
            "cv_std": std,
            "extract_seconds": seconds,
            "failures": len(failures),
        }
        print(f"{name:<18}{mean:>10.3f} ± {std:.3f}{seconds:>11.1f}", flush=True)
        atomic_write_text(args.out, json.dumps(rows, indent=2))  # after each: runs are long


if __name__ == "__main__":
    main()
