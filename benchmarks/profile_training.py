"""Where a fglab fit spends its time: torch.profiler over a short fit (one siamese epoch, two
model epochs, no refit, one network) on a data set, the ops with the most CPU time first.

    python benchmarks/profile_training.py eng-wiki [--rows 12]

To profile an earlier version, unpack its package and put it first on the path:
    git archive REV fglab | tar -x -C /tmp/fglab-REV
    PYTHONPATH=/tmp/fglab-REV python benchmarks/profile_training.py eng-wiki
"""

from __future__ import annotations

import argparse
import time

from torch.profiler import ProfilerActivity, profile

import fglab
from fglab.config import FGLabConfig
from fglab.data.splits import validation_split
from fglab.data.wikipedia import load_dataset
from fglab.features.views import build_features, default_image_view
from fglab.hardware import set_fit_threads
from fglab.training.fglab_method import FGLabMethod

SHORT_FIT = {"training": {"epochs": 2, "siamese_epochs": 1, "refit": False, "ensemble": 1}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--rows", type=int, default=12, help="ops to list")
    args = parser.parse_args()
    dataset = load_dataset(args.dataset)
    train, _ = build_features(dataset, default_image_view(dataset), "text:tfidf")
    fit_rows, val_rows = validation_split(train.labels, 0)
    set_fit_threads()  # torch's thread count: fit leaves it to its caller
    method = FGLabMethod(FGLabConfig.from_dict(SHORT_FIT))
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        method.fit(train.subset(fit_rows), train.subset(val_rows))
    seconds = time.perf_counter() - start
    averages = prof.key_averages()
    total = sum(event.self_cpu_time_total for event in averages)
    print(f"fglab from {fglab.__file__}: short fit {seconds:.1f} s under the profiler")
    print("| op | self CPU s | share |")
    print("|---|---|---|")
    for event in sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.rows]:
        share = event.self_cpu_time_total / total
        print(f"| {event.key} | {event.self_cpu_time_total / 1e6:.2f} | {share:.1%} |")


if __name__ == "__main__":
    main()
