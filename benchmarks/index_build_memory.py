"""Peak memory of ``fglab index`` as a collection grows: the streaming build against an
earlier checkout, in the same run.

A JSONL manifest of N short Chinese texts (pieces of chinese-news test texts, each item
different) is indexed with a 256-d stand-in model (``synthetic_text_method.py``: the tf-idf of
a trained chinese-news run, ``--run``, projected to 256-d), ``--kind auto`` (exact search
below 200k items, ``ivfpq`` from there). Each build runs as its own ``fglab index`` process;
its peak resident memory is its ``VmHWM`` read as it exits. ``--baseline DIR`` names a
checkout of an earlier commit whose builds run beside the current tree's, e.g.

    git worktree add /tmp/fglab-base 0528d48
    .venv/bin/python benchmarks/index_build_memory.py --sizes 100000,300000,1000000 \\
        --baseline /tmp/fglab-base

Prints a markdown table and writes JSON (default ``results/bench/index_build_memory.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from search_end_to_end import query_texts, synthetic_pipeline

from fglab.pipeline import TRUSTED_METHODS_ENV

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
#: Runs `fglab index` and prints the process's peak resident memory as it exits.
CHILD = """
import atexit, sys
import fglab
from fglab.cli import main
print("FGLAB_FROM", fglab.__file__, file=sys.stderr)
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print("VMHWM_KB", line.split()[1], file=sys.stderr)
atexit.register(peak)
sys.exit(main(sys.argv[1:]))
"""


def write_manifest(path: Path, n: int, pieces: list[str]) -> None:
    """``n`` text items, item ``i`` two pieces and its number (no two alike)."""
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            text = f"{pieces[i % len(pieces)]}{pieces[(7 * i + 3) % len(pieces)]} {i}"
            out.write(json.dumps({"id": f"t{i}", "text": text}, ensure_ascii=False) + "\n")


def timed_build(tree: Path, run: Path, manifest: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{BENCH_DIR}",
           TRUSTED_METHODS_ENV: "synthetic_text_method:ProjectedText"}
    command = [sys.executable, "-c", CHILD, "index", str(run.resolve()), "--dataset",
               f"manifest:{manifest.resolve()}", "--out", str(out.resolve())]
    started = time.perf_counter()
    # run in the tree: `python -c` puts the working folder first on the path, before PYTHONPATH
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                          cwd=tree)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the build in {tree} failed:\n{done.stderr[-2000:]}")
    lines = done.stderr.splitlines()
    imported = next(line.split(maxsplit=1)[1] for line in lines if line.startswith("FGLAB_FROM"))
    if not Path(imported).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the build meant for {tree} imported fglab from {imported}")
    peak_kb = next(int(line.split()[1]) for line in lines if line.startswith("VMHWM_KB"))
    listing = json.loads((out / "index.json").read_text())
    return {"seconds": seconds, "peak_rss_gib": peak_kb / 1024**2,
            "kind": listing["modalities"]["text"]["kind"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000,1000000",
                        type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of an earlier commit to build beside this tree")
    parser.add_argument("--run", type=Path, default=Path("runs/chinese-news-sm"),
                        help="a chinese-news run (`fglab train chinese-news --method sm`)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--out", type=Path, default=Path("results/bench/index_build_memory.json"))
    args = parser.parse_args()
    os.environ[TRUSTED_METHODS_ENV] = "synthetic_text_method:ProjectedText"
    trees = {"current": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    result: dict = {"load_average_start": round(os.getloadavg()[0], 2), "rows": []}
    with tempfile.TemporaryDirectory(prefix="fglab-build-", dir=args.work) as work:
        run = Path(work) / "run"
        pipeline = synthetic_pipeline(args.run, "clustered")
        pipeline.save(run)
        pieces = query_texts(pipeline, 1000, args.data_root)
        for n in args.sizes:
            manifest = Path(work) / f"texts-{n}.jsonl"
            write_manifest(manifest, n, pieces)
            for name, tree in trees.items():
                print(f"{n:,} texts, {name} ...", flush=True)
                out = Path(work) / f"index-{n}-{name}"
                measured = timed_build(tree, run, manifest, out)
                result["rows"].append({"items": n, "tree": name, **measured,
                                       "items_per_s": n / measured["seconds"]})
                shutil.rmtree(out)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result, indent=2))
            manifest.unlink()
    result["load_average_end"] = round(os.getloadavg()[0], 2)
    args.out.write_text(json.dumps(result, indent=2))
    print("\n| items | tree | kind | build s | items/s | peak RSS GiB |\n|---|---|---|---|---|---|")
    for row in result["rows"]:
        print(f"| {row['items']:,} | {row['tree']} | {row['kind']} | {row['seconds']:.1f} | "
              f"{row['items_per_s']:,.0f} | {row['peak_rss_gib']:.2f} |")
    print(f"\nload average {result['load_average_start']} → {result['load_average_end']}; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
