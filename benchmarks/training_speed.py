"""How long fglab takes to fit, against a reference measured in the same run.

For each data set and seed: sm-svm fitted on the same features (the reference: the
strongest baseline, seconds on these machines), the current fglab, and optionally fglab as
it was at an earlier git revision (``--previous REV``: that revision's ``fglab`` package is
unpacked into a temporary folder and fitted in a child process on the same split). Every fit
uses the split ``fglab reproduce`` uses (a stratified validation fifth of the training split
chooses fglab's epochs) and is scored on the test split, so a speed-up that costs accuracy
shows in the same table. Seconds are wall time of ``fit`` alone (features are built before).

    python benchmarks/training_speed.py --datasets eng-wiki,chinese-news --seeds 0 \\
        --previous 07739d5 --out results/bench/training_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from fglab.data.root import resolve_data_root
from fglab.data.splits import validation_split
from fglab.data.wikipedia import load_dataset
from fglab.evaluation.protocol import evaluate_method
from fglab.features.views import build_features, default_image_view
from fglab.hardware import set_fit_threads
from fglab.io import atomic_write_text
from fglab.method import fit_method
from fglab.registry import get_method

REPO = Path(__file__).resolve().parent.parent
#: Fits fglab in a child process with the fglab package found first on sys.path; prints JSON.
CHILD = """
import json, sys, time
from fglab.data.wikipedia import load_dataset
from fglab.evaluation.protocol import evaluate_method
from fglab.features.views import build_features
from fglab.registry import get_method
name, image_view, seed, data_root = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(sys.argv[5]) as handle:  # the split this checkout makes, as row numbers
    rows = json.load(handle)
dataset = load_dataset(name, data_root or None)
train, test = build_features(dataset, image_view, "text:tfidf")
method = get_method("fglab").build(seed=seed)
try:  # a revision whose fit leaves torch's threads to its caller; earlier ones set them
    from fglab.hardware import set_fit_threads
    set_fit_threads()
except ImportError:
    pass
start = time.perf_counter()
method.fit(train.subset(rows["fit"]), train.subset(rows["validation"]))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "map": evaluate_method(method, test).map_all["avg"]}))
"""


def _fit(name: str, train, test, seed: int) -> dict:
    method = get_method(name).build(seed=seed)
    start = time.perf_counter()
    fit_method(method, train, seed)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "map": evaluate_method(method, test).map_all["avg"]}


def _unpack_revision(revision: str, into: Path) -> Path:
    """The ``fglab`` package of ``revision`` under ``into`` (git archive, no checkout)."""
    archive = into / "fglab.tar"
    with archive.open("wb") as handle:
        subprocess.run(
            ["git", "-C", str(REPO), "archive", revision, "fglab"], stdout=handle, check=True
        )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def _fit_previous(
    root: Path, name: str, image_view: str, seed: int, data_root: Path, labels: np.ndarray
) -> dict:
    """Fit the earlier revision unpacked in ``root`` on this checkout's validation split of
    the training pairs (passed as row numbers: an earlier revision may split elsewhere)."""
    fit_rows, val_rows = validation_split(labels, seed)
    split_file = root / f"split-{name}-{seed}.json"
    split_file.write_text(
        json.dumps({"fit": fit_rows.tolist(), "validation": val_rows.tolist()}), "utf-8"
    )
    # run in ``root`` so that its fglab, not this checkout's, is imported
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, name, image_view, str(seed), str(data_root), str(split_file)],
        env=env, capture_output=True, text=True, cwd=root,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the earlier revision's fit failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="eng-wiki,chinese-news")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--previous", default=None, help="git revision to time as well")
    parser.add_argument("--data-root", default="")
    parser.add_argument("--out", type=Path, default=Path("results/bench/training_speed.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    data_root = resolve_data_root(args.data_root or None)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        previous = _unpack_revision(args.previous, Path(tmp)) if args.previous else None
        for name in args.datasets.split(","):
            dataset = load_dataset(name, data_root)
            image_view = default_image_view(dataset)
            train, test = build_features(dataset, image_view, "text:tfidf")
            set_fit_threads()  # torch's thread count: fit leaves it to its caller
            for seed in seeds:
                load_before = _load()
                runs = {"sm-svm": _fit("sm-svm", train, test, seed)}
                runs["fglab"] = _fit("fglab", train, test, seed)
                if previous is not None:
                    runs[f"fglab@{args.previous}"] = _fit_previous(
                        previous, name, image_view, seed, data_root, train.labels
                    )
                for method, run in runs.items():
                    ratio = run["seconds"] / runs["sm-svm"]["seconds"]
                    rows.append({"dataset": name, "seed": seed, "method": method, **run,
                                 "ratio_to_sm_svm": ratio, "load": f"{load_before} -> {_load()}"})
                    print(f"{name} seed {seed} {method}: {run['seconds']:.1f} s "
                          f"({ratio:.1f}x sm-svm), avg MAP@all {run['map']:.4f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps({"features": "default image view + text:tfidf",
                                            "rows": rows}, indent=2))
    print("\n| data set | method | seconds (mean) | × sm-svm | avg MAP@all (mean) | seeds |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets.split(","):
        for method in dict.fromkeys(r["method"] for r in rows if r["dataset"] == name):
            mine = [r for r in rows if r["dataset"] == name and r["method"] == method]
            print(f"| {name} | {method} | {np.mean([r['seconds'] for r in mine]):.1f} | "
                  f"{np.mean([r['ratio_to_sm_svm'] for r in mine]):.1f} | "
                  f"{np.mean([r['map'] for r in mine]):.4f} | {len(mine)} |")


if __name__ == "__main__":
    main()
