"""Where one fglab fit spends its wall time, stage by stage: the seconds of every epoch (from
the training loop's epoch hook) summed per stage, the first epoch of each stage shown apart
(it includes the stage's set-up: the word graph and the teacher's grades before the first
siamese epoch, the kernel map before the first model and refit epoch).

    python benchmarks/training_stages.py eng-wiki [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from fglab.data.root import resolve_data_root
from fglab.data.wikipedia import load_dataset
from fglab.features.views import build_features, default_image_view
from fglab.hardware import set_fit_threads
from fglab.method import fit_method
from fglab.training.fglab_method import FGLabMethod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, resolve_data_root(args.data_root))
    train, _ = build_features(dataset, default_image_view(dataset), "text:tfidf")
    set_fit_threads()  # torch's thread count: fit leaves it to its caller
    ends: list[tuple[str, float]] = []
    method = FGLabMethod(on_epoch_end=lambda stage, _: ends.append((stage, time.perf_counter())))
    method.config.seed = args.seed
    start = previous = time.perf_counter()
    fit_method(method, train, args.seed)
    total = time.perf_counter() - start
    first: dict[str, float] = {}
    rest: dict[str, list[float]] = defaultdict(list)
    for stage, end in ends:
        if stage in first:
            rest[stage].append(end - previous)
        else:
            first[stage] = end - previous
        previous = end
    print(f"{args.dataset}, seed {args.seed}: fit {total:.1f} s")
    print("| stage | epochs | first epoch + set-up s | other epochs s | per other epoch s |")
    print("|---|---|---|---|---|")
    for stage, seconds in first.items():
        others = rest[stage]
        per = sum(others) / len(others) if others else 0.0
        print(f"| {stage} | {1 + len(others)} | {seconds:.2f} | {sum(others):.2f} | {per:.2f} |")


if __name__ == "__main__":
    main()
