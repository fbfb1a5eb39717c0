"""How much a fit slows beside one CPU-bound process, per thread policy, in one run.

For each thread policy and method: one eng-wiki fit (seed 0, the default image view and
text:tfidf, the split ``fglab reproduce`` uses) alone, then one beside a CPU-bound process (a
Python busy loop this script starts before the fit and stops after it, bounded in time; each
in a session of its own, so that with autogroup scheduling they compete as two jobs do). Each
fit runs in a child process, since OpenMP reads its wait policy once, when torch loads. The
policies (``--policies``):

- ``fixed``: the earlier behaviour, ``FGLAB_THREAD_POLICY=fixed`` (OpenMP's spinning waits,
  two threads a fit);
- ``adaptive``: the default now (idle threads sleep; one thread per idle core, at most two);
- ``passive-2``, ``one-thread``: the two levers apart (``OMP_NUM_THREADS`` 2 or 1).

Seconds are wall time of the fit alone (features are built before). The load average at the
start and the end is printed: the machine may be shared (``--nice -10`` puts the fits and
the busy loop ahead of other work there).

    python benchmarks/shared_cores.py --policies fixed,adaptive \\
        --out results/bench/shared_cores.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from fglab.hardware import idle_cores
from fglab.io import atomic_write_text

POLICIES: dict[str, dict[str, str]] = {
    "fixed": {"FGLAB_THREAD_POLICY": "fixed"},
    "adaptive": {},
    "passive-2": {"OMP_NUM_THREADS": "2"},
    "one-thread": {"OMP_NUM_THREADS": "1"},
}
#: Cleared from every child's environment, so that only the policy's settings apply.
CLEARED = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOMP_SPINCOUNT",
           "FGLAB_THREAD_POLICY")
#: Fits one method in a fresh process (fglab imported before torch); prints JSON.
CHILD = """
import json, os, sys, time
from fglab.data.root import resolve_data_root
from fglab.data.wikipedia import load_dataset
from fglab.evaluation.protocol import evaluate_method
from fglab.features.views import build_features, default_image_view
from fglab.hardware import set_fit_threads
from fglab.method import fit_method
from fglab.registry import get_method
import torch
name, seed, data_root = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
dataset = load_dataset("eng-wiki", resolve_data_root(data_root))
train, test = build_features(dataset, default_image_view(dataset), "text:tfidf")
method = get_method(name).build(seed=seed)
start = time.perf_counter()
if type(method).__module__.startswith("fglab.training"):  # fit no longer sets torch's threads
    set_fit_threads()
fit_method(method, train, seed)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads(),
                  "map": evaluate_method(method, test).map_all["avg"],
                  "wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset")}))
"""
#: One CPU-bound process: a busy loop that ends by itself after argv[1] seconds.
BUSY_LOOP = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
"""
FIT_LIMIT_S = 1200


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def _start(argv: list[str], nice: int, **kwargs) -> subprocess.Popen:
    """Start ``argv`` in a session of its own (with autogroup scheduling, a group of its own, as
    a job from another terminal would be), at niceness ``nice`` (process and group)."""
    child = subprocess.Popen(argv, start_new_session=True, **kwargs)
    if nice:
        os.setpriority(os.PRIO_PROCESS, child.pid, nice)
        group = Path(f"/proc/{child.pid}/autogroup")
        if group.exists():
            group.write_text(str(nice))
    return child


def _fit(method: str, policy: str, seed: int, data_root: str, busy: bool, nice: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED} | POLICIES[policy]
    loop = _start([sys.executable, "-c", BUSY_LOOP, str(FIT_LIMIT_S)], nice) if busy else None
    try:
        if loop is not None:
            time.sleep(0.5)
        fit = _start([sys.executable, "-c", CHILD, method, str(seed), data_root], nice, env=env,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = fit.communicate(timeout=FIT_LIMIT_S)
        finally:
            fit.kill()
            fit.wait()
    finally:
        if loop is not None:
            loop.terminate()
            loop.wait()
    if fit.returncode != 0:
        raise RuntimeError(f"{method} ({policy}) failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default="fixed,adaptive",
                        help=f"comma-separated, of {', '.join(POLICIES)}")
    parser.add_argument("--methods", default="sm-svm,fglab")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", default="")
    parser.add_argument("--out", type=Path, default=Path("results/bench/shared_cores.json"))
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of the fits and the busy loop (and of their autogroups); "
                             "negative (root only) puts them ahead of other work on a shared "
                             "machine")
    args = parser.parse_args()
    policies = args.policies.split(",")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        parser.error(f"unknown policies {unknown}; known: {', '.join(POLICIES)}")
    start_load, start_idle = _load(), idle_cores(1.0)
    print(f"load average at the start: {start_load}; idle cores over 1 s: {start_idle}",
          flush=True)
    rows = []
    for policy in policies:
        for method in args.methods.split(","):
            alone = _fit(method, policy, args.seed, args.data_root, False, args.nice)
            beside = _fit(method, policy, args.seed, args.data_root, True, args.nice)
            row = {"policy": policy, "method": method, "alone": alone, "beside": beside,
                   "slowdown": beside["seconds"] / alone["seconds"], "load": _load()}
            rows.append(row)
            print(f"{policy} {method}: {alone['seconds']:.1f} s alone, {beside['seconds']:.1f} s "
                  f"beside one CPU-bound process ({row['slowdown']:.2f}x); threads "
                  f"{alone['threads']} / {beside['threads']}; load {row['load']}", flush=True)
    end_load = _load()
    print(f"load average at the end: {end_load}\n")
    print("| policy | method | seconds alone | seconds beside one CPU-bound process | slowdown "
          "| torch threads alone / beside | test avg MAP@all alone / beside |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        alone, beside = row["alone"], row["beside"]
        print(f"| {row['policy']} | {row['method']} | {alone['seconds']:.1f} | "
              f"{beside['seconds']:.1f} | {row['slowdown']:.2f}x | {alone['threads']} / "
              f"{beside['threads']} | {alone['map']:.4f} / {beside['map']:.4f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(
        {"load_start": start_load, "idle_cores_start": start_idle, "load_end": end_load,
         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
