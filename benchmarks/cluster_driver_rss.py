"""The memory of the process that drives `fglab index --ray`: its peak RSS while N items are
embedded and written as a sharded index on a Ray cluster, against the N x dim float32 vectors
it no longer holds (the workers stage the vectors in the build folder and write the shards).

For each N: a manifest of N short English texts (``doc0`` ... ``docN-1``, 6-12 words of a
48-word vocabulary, drawn from a seed) and a cheap text-only run (tf-idf, then the ``random``
method's ``--dim``-wide Gaussian embedding: what is measured is the data flow, not a model);
then ``fglab index RUN --dataset manifest:PATH --out INDEX --shards 2 --kind flat --ray ADDR``
in a child process on a one-node loopback cluster (``--cpus`` CPUs, a head started here). The
child reports, when the command returns, its ``VmHWM`` (the peak resident set of its own
memory since it started), ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (which Linux carries
over an ``exec`` from the process that spawned it: it is at least this script's peak RSS at
the spawn, also reported) and ``RUSAGE_CHILDREN`` (processes it started and waited for); the Ray
processes (workers, raylet) belong to the cluster, not to the driver, and the largest RSS one
of them reaches is sampled here every 0.5 s. ``--local`` measures the same command without
``--ray`` (everything in one process) too. ``--pythonpath DIR`` runs the child with another
fglab first on its path (e.g. an export of an earlier commit, to compare).

    .venv-cluster/bin/python benchmarks/cluster_driver_rss.py --sizes 100000 1000000

Prints a markdown table and writes JSON (default ``results/bench/cluster_driver_rss.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

WORDS = [
    "castle", "river", "king", "army", "guitar", "music", "concert", "song", "forest", "mountain",
    "lake", "city", "market", "trade", "school", "student", "teacher", "science", "doctor",
    "hospital", "garden", "flower", "winter", "summer", "train", "station", "bridge", "harbour",
    "ship", "island", "desert", "camel", "museum", "painting", "theatre", "dance", "football",
    "match", "league", "coach", "election", "minister", "court", "judge", "village", "farmer",
    "harvest", "storm",
]


def write_manifest(path: Path, count: int, seed: int = 0) -> Path:
    """``count`` rows of ``{"id", "text"}``; written once per size (a complete file is kept)."""
    if path.is_file():
        with open(path, encoding="utf-8") as handle:
            if sum(1 for _ in handle) == count:
                return path
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with open(partial, "w", encoding="utf-8") as handle:
        for start in range(0, count, 100_000):
            size = min(100_000, count - start)
            lengths = rng.integers(6, 13, size)
            picks = rng.integers(0, len(WORDS), (size, 12))
            handle.writelines(
                json.dumps({"id": f"doc{start + i}", "text": " ".join(WORDS[w] for w in
                                                                      picks[i, :lengths[i]])})
                + "\n" for i in range(size))
    partial.replace(path)
    return path


def write_run(path: Path, dim: int) -> Path:
    """A text-only run: tf-idf over the vocabulary, the ``random`` method's ``dim``-d output."""
    from scipy import sparse

    from fglab.baselines import RandomRetrieval
    from fglab.features.featureset import FeatureSet
    from fglab.features.text import TfidfTextFeatures
    from fglab.features.views import _pretokenized
    from fglab.pipeline import RetrievalPipeline

    rng = np.random.default_rng(0)
    tokens = [[WORDS[int(w)] for w in rng.integers(0, len(WORDS), 8)] for _ in range(60)]
    tfidf = TfidfTextFeatures(_pretokenized, min_df=1).fit(tokens)
    train = FeatureSet(rng.standard_normal((60, 12)), sparse.csr_matrix(tfidf.transform(tokens)),
                       np.arange(60) % 3)
    method = RandomRetrieval(0, dim).fit(train)
    RetrievalPipeline("synthetic", "random", "image:sift", "text:tfidf", "en", ["a", "b", "c"],
                      method, tfidf, ["the"]).save(path)
    return path


def child(argv: list[str]) -> None:
    """Run `fglab ARGV` here, then print this process's and its children's peak RSS."""
    from fglab.cli import main as fglab_main

    started = time.perf_counter()
    code = fglab_main(argv)
    seconds = time.perf_counter() - started
    kib = {who: resource.getrusage(getattr(resource, who)).ru_maxrss
           for who in ("RUSAGE_SELF", "RUSAGE_CHILDREN")}
    kib["VmHWM"] = _status_kib("VmHWM")
    print("RESULT " + json.dumps({"code": code, "seconds": round(seconds, 1),
                                  "driver_hwm_mib": round(kib["VmHWM"] / 1024, 1),
                                  "driver_maxrss_mib": round(kib["RUSAGE_SELF"] / 1024, 1),
                                  "children_mib": round(kib["RUSAGE_CHILDREN"] / 1024, 1)}))


def _status_kib(field: str) -> int:
    """A ``kB`` field of this process's ``/proc/self/status`` (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(f"{field}:"))


class PeakSampler(threading.Thread):
    """The largest RSS any process under this one (but ``exclude``) reaches, every 0.5 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.exclude: set[int] = set()
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.done.wait(0.5):
            for process in me.children(recursive=True):
                try:
                    if process.pid not in self.exclude:
                        self.peak = max(self.peak, process.memory_info().rss)
                except psutil.Error:
                    pass


def measure(argv: list[str], timeout_s: float) -> dict:
    sampler = PeakSampler()
    sampler.start()
    spawner_mib = round(_status_kib("VmHWM") / 1024, 1)  # what ru_maxrss carries over
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--", *argv]
    # run from elsewhere: Ray puts the driver's folder first on its workers' path
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd="/")
    sampler.exclude.add(process.pid)
    try:
        out, _ = process.communicate(timeout=timeout_s)
    finally:
        sampler.done.set()
        process.kill()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {"code": process.returncode, "error": "no result (timed out or failed)"}
    return {**json.loads(lines[-1][7:]), "spawner_mib": spawner_mib,
            "ray_process_peak_mib": round(sampler.peak / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--local", action="store_true", help="measure without --ray too")
    parser.add_argument("--pythonpath", default=None)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--work", type=Path, default=Path("/tmp/fglab-driver-rss"))
    parser.add_argument("--out", type=Path, default=Path("results/bench/cluster_driver_rss.json"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("argv", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.argv)
    results = run_all(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print("| N | path | seconds | driver VmHWM MiB | driver ru_maxrss MiB (spawner's peak) | "
          "its children MiB | largest Ray process MiB | N x dim float32 MiB |\n"
          "|---|---|---|---|---|---|---|---|")
    for row in results["rows"]:
        print(f"| {row['n']} | {row['path']} | {row.get('seconds')} | "
              f"{row.get('driver_hwm_mib')} | {row.get('driver_maxrss_mib')} "
              f"({row.get('spawner_mib')}) | {row.get('children_mib')} | "
              f"{row.get('ray_process_peak_mib', '-')} | {row['vectors_mib']} |")
    print(f"\nwrote {args.out}")


def run_all(args: argparse.Namespace) -> dict:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    args.work = args.work.resolve()
    run = write_run(args.work / "run", args.dim)
    if args.pythonpath:  # the cluster's workers run the same fglab as the driver
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [args.pythonpath, os.environ.get("PYTHONPATH")]))
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": args.cpus, "object_store_memory": 512 * 2**20, "include_dashboard": False})
    results: dict = {"cpus": os.cpu_count(), "dim": args.dim, "shards": args.shards,
                     "pythonpath": args.pythonpath, "rows": []}
    try:
        for n in args.sizes:
            manifest = write_manifest(args.work / f"docs-{n}.jsonl", n)
            base = ["index", str(run), "--dataset", f"manifest:{manifest}", "--kind", "flat",
                    "--shards", str(args.shards)]
            paths = {"ray": ["--ray", cluster.address, "--workers", str(args.cpus)]}
            if args.local:
                paths["in process"] = []
            for name, extra in paths.items():
                out = args.work / f"index-{n}-{name.replace(' ', '-')}"
                row = measure([*base, "--out", str(out), *extra], args.timeout)
                row.update(n=n, path=name, vectors_mib=round(n * args.dim * 4 / 2**20, 1))
                results["rows"].append(row)
                print(json.dumps(row), flush=True)
    finally:
        cluster.shutdown()
    return results


if __name__ == "__main__":
    main()
