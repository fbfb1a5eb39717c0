"""How `fglab train manifest:... --method fglab` grows with the collection: synthetic
collections of N pairs (``synthetic_collection.py``), each featurized, trained with and
without labels, and indexed, every step its own process, timed and its memory measured.

    python benchmarks/scale.py --sizes 2000 --labels both --out /tmp/fglab-scale

For each size: generate (or complete) the collection; featurize its images into a feature
cache of its own (``OUT/cache/n<N>``, emptied first, so the extraction is cold): with
`fglab features manifest:PATH` where that command takes manifests, else a process that only
runs ``extract_image_features`` on the manifest's image paths; then for each label setting
`fglab train manifest:PATH --method fglab` (``--pairs`` for the run without labels, same
collection) and `fglab index RUN --dataset manifest:PATH`. Training reads the image features
from the warm cache. Every run gets the same views, EfficientNet-Lite0 and tf-idf
(``--image-view``, ``--text-view``), so sizes and label settings compare: at pair level the
defaults are richer (Lite0 and Lite2, tf-idf and USE), whose extra featurization is measured
apart (docs/benchmarks.md). Memory: ``peak RSS`` is the largest resident set of the step's process
or of any process it started and waited for (the kernel's own maximum, from ``wait4``);
``tree`` is the largest sum of PSS (proportional set size: shared pages split between the
processes that share them) over the process and all its descendants, sampled every 0.5 s.
Stage times inside training come from the run's ``method/state.json`` where it records them
(each stage's ``seconds``, the fit's ``timings``: teacher, model, validation, refit).

``--prepare`` only generates and featurizes (cold) each size; ``--reuse-features`` then keeps
each size's store and its recorded cold featurize, so the training steps can be timed alone
later (featurizing 100,000 photos takes about 40 minutes here).

Writes ``OUT/scale.json`` (after every step, so a killed run keeps what it measured) and
``OUT/scale.md``. ``--keep`` reuses the rows already measured (and their runs); ``--fresh``
deletes the generated collection too and redoes everything; by default the collection is
reused (images that exist are not written again) and every step is measured again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_collection import generate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VIEW = "image:efficientnet-lite0"
SAMPLE_S = 0.5


@dataclass
class Step:
    seconds: float
    peak_rss_gb: float  # the largest single process (wait4's ru_maxrss)
    peak_tree_gb: float  # the largest sampled PSS sum of the process tree
    returncode: int


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        parent = int(stat[stat.rindex(b")") + 2 :].split()[1])  # after "pid (comm) state"
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_pss_kb(pid: int) -> int:
    total = 0
    for process in descendants(pid):
        try:
            with open(f"/proc/{process}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:  # gone meanwhile
            continue
    return total


def run_step(command: list[str], log: Path, env: dict[str, str]) -> Step:
    """Run ``command`` to its end with stdout and stderr in ``log``; its wall time and
    memory (see the module docstring)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {shlex.join(command)}", flush=True)
    with open(log, "w") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   cwd=REPO)
        peak_tree, done = [0], threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_S):
                peak_tree[0] = max(peak_tree[0], tree_pss_kb(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
    step = Step(seconds, usage.ru_maxrss / 2**20, peak_tree[0] / 2**20, process.returncode)
    print(f"  {seconds:.1f} s, peak RSS {step.peak_rss_gb:.2f} GB, tree PSS "
          f"{step.peak_tree_gb:.2f} GB, exit {step.returncode}", flush=True)
    if step.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{shlex.join(command)} failed ({step.returncode}); "
                           f"end of {log}:\n" + "\n".join(tail))
    return step


def fglab_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fglab", *args]


def features_take_manifests() -> bool:
    """Whether `fglab features` accepts manifest:PATH (its help says so)."""
    result = subprocess.run(fglab_command("features", "--help"), capture_output=True,
                            text=True, cwd=REPO)
    return "manifest" in result.stdout


def featurize_only(manifest: Path) -> None:
    """The fallback featurize step: the manifest's images through the image extractor into
    the cache ($FGLAB_CACHE), nothing else."""
    from fglab.data.manifest import load_manifest
    from fglab.features.image_views import extract_image_features

    items = load_manifest(manifest).items
    paths = [item.image_path for item in items if item.image_path is not None]
    start = time.perf_counter()
    features, failures = extract_image_features(paths, VIEW)
    seconds = time.perf_counter() - start
    print(f"{len(paths)} images -> {features.shape} in {seconds:.1f} s "
          f"({len(paths) / seconds:.1f} images/s), {len(failures)} failed")


def stage_seconds(run: Path) -> dict:
    """Per-stage seconds from the run's method/state.json, where the training records them."""
    path = run / "method" / "state.json"
    if not path.is_file():
        return {}
    state = json.loads(path.read_text(encoding="utf-8"))
    stages, timings = state.get("stages") or {}, state.get("timings") or {}

    def seconds(name: str) -> float | None:
        """``timings[name]``, else the summed seconds of stage ``name`` and of the ensemble's
        further members (``refit-2``, ``refit-3``); None where nothing records them."""
        if timings.get(name) is not None:
            return timings[name]
        found = [stage.get("seconds") for key, stage in stages.items()
                 if key == name or key.startswith(f"{name}-")]
        found = [f for f in found if f is not None]
        return sum(found) if found else None

    return {
        "teacher": timings.get("teacher", seconds("siamese")),
        "model": seconds("model"),
        "validation": timings.get("validation"),
        "refit": seconds("refit"),
        "epochs": {name: len(stage.get("history") or []) for name, stage in stages.items()},
        "best_epoch": {name: stage.get("best_epoch") for name, stage in stages.items()},
        "recorded": {"stage_keys": sorted({k for s in stages.values() for k in s}),
                     "timings": timings},
    }


def count_splits(manifest: Path) -> dict[str, int]:
    """Pairs per split, and the characters of all texts (what the fit check reads)."""
    counts = {"train": 0, "test": 0, "text_chars": 0}
    with open(manifest, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            counts[row["split"]] += 1
            counts["text_chars"] += len(row["text"])
    return counts


def fit_pairs(n_train: int) -> int:
    """Pairs of the fitting part: the training split less its validation part."""
    from fglab.data.splits import VALIDATION_BOUND, VALIDATION_FRACTION

    return n_train - min(math.ceil(n_train * VALIDATION_FRACTION), VALIDATION_BOUND)


def model_ms_per_pair_epoch(row: dict) -> float | None:
    """Milliseconds of the model stage (validation apart) per fitting pair and epoch: the
    cost that must stay flat as the collection grows."""
    stages = row.get("stages") or {}
    seconds, epochs = stages.get("model"), (stages.get("epochs") or {}).get("model")
    if not seconds or not epochs:
        return None
    return seconds / (fit_pairs(row["train"]) * epochs) * 1000


def estimated_gb(splits: dict[str, int]) -> float:
    """What `fglab train`'s fit check estimates for this collection."""
    from fglab.training.fit_check import estimate_fit

    pairs = splits["train"] + splits["test"]
    return estimate_fit(pairs, 1280, splits["text_chars"]).peak_bytes / 2**30


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def markdown(rows: list[dict]) -> str:
    head = ("| pairs | labels | featurize s | images/s | teacher s | training s | validation s "
            "| refit s | index s | total train s | s per 1k pairs | model ms per pair-epoch "
            "| peak RSS GB (train) | tree PSS GB (train) | fit check estimate GB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        stages = row.get("stages") or {}
        lines.append("| " + " | ".join([
            f"{row['size']:,}", row["labels"], _fmt(row["featurize_s"]),
            _fmt(row["images_per_s"]), _fmt(stages.get("teacher")),
            _fmt(stages.get("model")), _fmt(stages.get("validation")),
            _fmt(stages.get("refit")), _fmt(row["index_s"]), _fmt(row["train_s"]),
            _fmt(row["train_s"] / row["size"] * 1000, 2), _fmt(model_ms_per_pair_epoch(row), 3),
            _fmt(row["train_peak_rss_gb"], 2), _fmt(row["train_peak_tree_gb"], 2),
            _fmt(row.get("estimated_gb"), 2),
        ]) + " |")
    return "\n".join(lines)


def git_state() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=REPO).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "fglab_changed": bool(git("status", "--porcelain", "fglab"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000,50000,100000",
                        help="collection sizes, comma-separated")
    parser.add_argument("--labels", choices=("both", "yes", "no"), default="both",
                        help="train with the labels, without them (--pairs), or both")
    parser.add_argument("--out", type=Path, default=Path("/tmp/fglab-scale"),
                        help="runs, indexes, caches, logs and scale.json/.md")
    parser.add_argument("--collection", type=Path, default=None,
                        help="where the generated collection goes (default OUT/collection)")
    parser.add_argument("--data-root", default=None,
                        help="data sets folder (default: $FGLAB_DATA, then ../shared/data)")
    parser.add_argument("--seed", type=int, default=0)
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--keep", action="store_true",
                       help="reuse the rows (and runs) already measured in OUT/scale.json")
    again.add_argument("--fresh", action="store_true",
                       help="delete the generated collection and every run, redo all")
    parser.add_argument("--prepare", action="store_true",
                        help="only generate and featurize (cold) each size, then stop")
    parser.add_argument("--reuse-features", action="store_true",
                        help="keep a size's feature store and its featurize measurement from "
                             "an earlier --prepare (or run) instead of featurizing again")
    parser.add_argument("--featurize-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.featurize_only:
        featurize_only(args.featurize_only)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    settings = {"both": ["yes", "no"], "yes": ["yes"], "no": ["no"]}[args.labels]
    out = args.out.resolve()
    collection = (args.collection or out / "collection").resolve()
    if args.fresh:
        for folder in (collection, out / "runs", out / "indexes", out / "cache"):
            shutil.rmtree(folder, ignore_errors=True)
    results_path = out / "scale.json"
    old = json.loads(results_path.read_text()) if results_path.is_file() else {}
    rows = [r for r in old.get("rows", []) if Path(r["run"]).is_dir()] if args.keep else []
    results = {
        "command": shlex.join([sys.executable, *sys.argv]),
        **git_state(),
        "cpus": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "generation": old.get("generation", {}) if args.keep else {},
        "rows": rows,
        "featurize": old.get("featurize", {}),
    }
    manifest_features = features_take_manifests()
    print(f"fglab features {'takes' if manifest_features else 'does not take'} manifests")

    def save() -> None:
        results["load_average_end"] = os.getloadavg()
        out.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=1))
        (out / "scale.md").write_text(markdown(results["rows"]) + "\n")

    for size in sizes:
        todo = [s for s in settings
                if not any(r["size"] == size and r["labels"] == s for r in rows)]
        if args.prepare:
            todo = []
        elif not todo:
            continue
        manifest, report = generate(collection, size, args.seed, args.data_root)
        results["generation"][str(size)] = {**asdict(report),
                                            "images_per_s": report.images_per_second}
        print(f"collection {manifest}: {report.pairs} pairs, {report.written} images written "
              f"in {report.seconds:.1f} s"
              + (f" ({report.images_per_second:.0f} images/s)" if report.written else ""))
        cache = out / "cache" / f"n{size}"
        env = {**os.environ, "FGLAB_CACHE": str(cache)}
        spec = f"manifest:{manifest}"
        earlier = results["featurize"].get(str(size))
        if args.reuse_features and earlier and cache.is_dir():
            feat = Step(*(earlier[k] for k in ("seconds", "peak_rss_gb", "peak_tree_gb",
                                                "returncode")))
            print(f"  features of {size} pairs from the earlier cold run ({feat.seconds:.0f} s)")
        else:
            shutil.rmtree(cache, ignore_errors=True)  # a cold featurize
            featurize = (fglab_command("features", spec, "--view", VIEW) if manifest_features
                         else [sys.executable, __file__, "--featurize-only", str(manifest)])
            feat = run_step(featurize, out / "logs" / f"n{size}-featurize.log", env)
            results["featurize"][str(size)] = {**asdict(feat), "load_average": os.getloadavg()}
            save()
        splits = count_splits(manifest)
        for setting in todo:
            name = f"n{size}-{'labels' if setting == 'yes' else 'pairs'}"
            run, index = out / "runs" / name, out / "indexes" / name
            shutil.rmtree(run, ignore_errors=True)  # `fglab train` resumes a run it finds
            shutil.rmtree(index, ignore_errors=True)
            command = fglab_command("train", spec, "--method", "fglab", "--out", str(run),
                                    "--image-view", VIEW, "--text-view", "text:tfidf")
            train = run_step(command + (["--pairs"] if setting == "no" else []),
                             out / "logs" / f"{name}-train.log", env)
            indexed = run_step(fglab_command("index", str(run), "--dataset", spec,
                                             "--out", str(index)),
                               out / "logs" / f"{name}-index.log", env)
            stages = stage_seconds(run)
            print(f"  method/state.json: {json.dumps(stages)}")
            rows.append({
                "size": report.pairs, "labels": setting, **splits, "run": str(run),
                "featurize": "fglab features" if manifest_features else "extract_image_features",
                "featurize_s": feat.seconds, "images_per_s": report.pairs / feat.seconds,
                "featurize_peak_rss_gb": feat.peak_rss_gb,
                "train_s": train.seconds, "train_peak_rss_gb": train.peak_rss_gb,
                "train_peak_tree_gb": train.peak_tree_gb,
                "index_s": indexed.seconds, "index_peak_rss_gb": indexed.peak_rss_gb,
                "stages": stages, "estimated_gb": estimated_gb(splits),
            })
            save()
    save()
    print(markdown(results["rows"]))


if __name__ == "__main__":
    main()
