"""Search latency as a user meets it: the same text queries through raw faiss, the Retriever
and HTTP (``fglab serve`` on loopback), plus index load, ``index-add`` and image queries.

For each ``--sizes`` entry: a synthetic index of that many image items (isotropic unit 256-d
vectors, the hardest case for approximate search, or ``--data clustered``; short texts) is
built with ``--kind`` (default auto: exact below 200k items, ``ivfpq`` above), saved, and
loaded back (timed). Its model
is a stand-in (``synthetic_text_method.py``): the tf-idf of a trained chinese-news run
(``--run``) projected to 256-d, so queries are real Chinese text. Each query is then timed,
one at a time (one thread per query, as ``fglab serve`` runs them), three ways in
interleaved rounds: the loaded faiss index searched with the
query's vector; ``Retriever.search_text`` (encoding + faiss + items); ``POST /search/text``
to ``fglab serve`` in its own process (whose warm-up reads an ``ivfpq`` index's vectors into
the OS cache; the benchmark's own copy of the vectors is dropped from that cache first).
recall@10 is against exact search. At the largest
size, 10 items are added through the API and through ``fglab index-add``.

Image queries: chinese-news photos (test split, read as bytes) uploaded to an index built from
``--run`` (``--image-index``, built if missing), in process and over HTTP.

    .venv/bin/python benchmarks/search_end_to_end.py --sizes 100000,1000000

Prints a markdown table and writes JSON (default ``results/bench/search_end_to_end.json``).
Other jobs on the machine change absolute numbers; the ratios to raw faiss are measured in
the same rounds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from synthetic_text_method import ProjectedText

from fglab.index.refined import (
    SpilledRows,
    VectorStore,
    default_nlist,
    exact_top_k,
    read_npy_rows,
)
from fglab.index.store import EmbeddingIndex, IndexSettings, Item
from fglab.index.vectors import set_search_threads
from fglab.pipeline import TRUSTED_METHODS_ENV, RetrievalPipeline
from fglab.retriever import MODEL_DIR, Retriever

K = 10
DIM = 256
BENCH_DIR = Path(__file__).resolve().parent
# Runs load only fglab's own method classes unless told otherwise: trust the stand-in model
# (here and in the `fglab serve` this starts, which inherits the environment).
os.environ[TRUSTED_METHODS_ENV] = "synthetic_text_method:ProjectedText"
CATEGORIES = [f"c{i}" for i in range(10)]


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def summary(ms: list[float]) -> dict:
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(np.mean(ms)),
        "n": len(ms),
    }


# -- the synthetic collection ----------------------------------------------------------------


def synthetic_pipeline(run: Path, data: str = "isotropic", seed: int = 0) -> RetrievalPipeline:
    """The run's tokenizer and tf-idf, a random 256-d projection as the model (for clustered
    data, queries land among the collection's clusters)."""
    trained = RetrievalPipeline.load(run)
    vocabulary = len(trained.text_features.vocabulary_)
    centers = mixture_centers(seed) if data == "clustered" else None
    return RetrievalPipeline(
        "synthetic", "projected-tfidf", trained.image_view, "text:tfidf", trained.language,
        CATEGORIES, ProjectedText.random(vocabulary, DIM, centers=centers),
        trained.text_features, trained.stopwords,
    )


def mixture_centers(seed: int) -> np.ndarray:
    """The 1,000 unit centers of the clustered collection (and of its queries)."""
    centers = np.random.default_rng(seed).standard_normal((1000, DIM), dtype=np.float32)
    return centers / np.linalg.norm(centers, axis=1, keepdims=True)


def query_texts(pipeline: RetrievalPipeline, count: int, data_root: str | None) -> list[str]:
    """Short queries: the first 20 characters of chinese-news test texts that hit the vocabulary."""
    from fglab.data.wikipedia import load_dataset

    test = load_dataset("chinese-news", data_root, log_problems_found=False).test
    queries = []
    for text in test.texts:
        query = "".join(text.split())[:20]
        if query and pipeline.text_inputs([query]).nnz:
            queries.append(query)
        if len(queries) == count:
            break
    return queries


CHUNK = 500_000


def write_vectors(path: Path, n: int, data: str, seed: int) -> None:
    """``n`` unit 256-d rows to an .npy file, chunk by chunk: isotropic, or a mixture of 1,000
    Gaussian clusters (``clustered``, like real embeddings)."""
    rng = np.random.default_rng(seed + 1)
    centers = mixture_centers(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, DIM))
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        noise = rng.standard_normal((size, DIM), dtype=np.float32)
        x = noise if data == "isotropic" else centers[rng.integers(0, 1000, size)] + noise / 16
        out[start : start + size] = x / np.linalg.norm(x, axis=1, keepdims=True)
    out.flush()


def build_index_file(vectors_path: str, folder: str, run: str, report: str, data: str,
                     seed: int, kind: str = "auto") -> None:
    """In a child process (its peak RSS is the build's): add the vectors chunk by chunk (the
    quantizers train on the first chunk), save (ivfpq tunes its search there)."""
    x = rows_of(Path(vectors_path))  # read by position: mapped pages would count as RSS
    n = len(x)
    pipeline = synthetic_pipeline(Path(run), data, seed)  # seeded: the same in every process
    info = {"collection": "synthetic", "collection_root": folder}
    started = time.perf_counter()
    index = EmbeddingIndex(DIM, IndexSettings(kind=kind, nlist=default_nlist(n)), info)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        items = [Item(f"img-{i}", "image", str(i), CATEGORIES[i % 10], f"item {i}",
                      f"synthetic item number {i}, a short text") for i in range(start, stop)]
        index.add(items, x.read(start, stop))
    built = time.perf_counter() - started
    index.save(Path(folder) / "index", write_extra=lambda tmp: pipeline.save(tmp / MODEL_DIR))
    modality = index.modalities["image"].faiss_index
    Path(report).write_text(json.dumps({
        "kind": index.kinds["image"], "build_s": built,
        "save_s": time.perf_counter() - started - built,
        "tuning": getattr(modality, "tuning", None),
        "build_peak_rss_gib": peak_rss_gib(),
    }))


def peak_rss_gib() -> float:
    """This process's peak resident memory (VmHWM: its own, from exec on; ``ru_maxrss``
    would also carry the parent's at the fork, which maps the 10 GB of vectors it wrote)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def rows_of(path: Path) -> SpilledRows:
    """An .npy file of float32 rows, read by position (its shape from a mapping of it, which
    reads only the header)."""
    count, dim = np.load(path, mmap_mode="r").shape
    return read_npy_rows(path, count, dim)


def build(n: int, args, folder: Path, data: str, kind: str) -> dict:
    vectors_path = folder / "x.npy"
    started = time.perf_counter()
    write_vectors(vectors_path, n, data, args.seed)
    generated = time.perf_counter() - started
    report = folder / "build.json"
    child = multiprocessing.get_context("spawn").Process(
        target=build_index_file,
        args=(str(vectors_path), str(folder), str(args.run), str(report), data, args.seed,
              kind),
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"the build of {n:,} items failed (exit {child.exitcode})")
    return {**json.loads(report.read_text()), "generate_s": generated}


# -- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env() -> dict:
    """``fglab serve`` must import the stand-in model from this folder."""
    path = os.pathsep.join(p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def start_server(index: Path, *options: str) -> tuple[subprocess.Popen, str, float]:
    """``fglab serve INDEX [OPTIONS]`` on a free loopback port; returns it, its URL and its
    start time."""
    port = free_port()
    command = [sys.executable, "-m", "fglab", "serve", str(index), "--port", str(port), *options]
    started = time.perf_counter()
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=server_env()
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(3000):
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return server, base, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    stop_server(server)
    raise RuntimeError("server did not answer /health within 150 s")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# -- text queries ----------------------------------------------------------------------------


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    hits = [len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def item_numbers(ids: list[str]) -> list[int]:
    return [int(i.split("-", 1)[1]) for i in ids]


def query_paths(index: EmbeddingIndex, retriever, http, queries, vectors) -> dict:
    """One function per path (raw faiss, Retriever, HTTP): query number -> item numbers."""
    faiss_index = index.modalities["image"].faiss_index

    def raw(i: int) -> list[int]:
        return faiss_index.search(vectors[i : i + 1], K)[1][0].tolist()

    def via_retriever(i: int) -> list[int]:
        return item_numbers([h.id for h in retriever.search_text(queries[i], K)])

    def via_http(i: int) -> list[int]:
        response = http.post("/search/text", json={"query": queries[i], "k": K})
        response.raise_for_status()
        return item_numbers([h["id"] for h in response.json()["hits"]])

    return {"raw faiss": raw, "Retriever": via_retriever, "HTTP": via_http}


def time_text_queries(index: EmbeddingIndex, retriever, http, queries, vectors, rounds) -> dict:
    """The three paths over the same queries, interleaved round by round."""
    paths = query_paths(index, retriever, http, queries, vectors)
    times: dict[str, list[float]] = {name: [] for name in paths}
    found: dict[str, list[list[int]]] = {name: [] for name in paths}
    for i in range(min(20, len(queries))):  # warm-up: jieba, page cache, connections
        for fn in paths.values():
            fn(i)
    for round_ in range(rounds):
        for name, fn in paths.items():
            for i in range(len(queries)):
                start = time.perf_counter()
                result = fn(i)
                times[name].append((time.perf_counter() - start) * 1000)
                if round_ == 0:
                    found[name].append(result)
    return {"times": times, "found": found}


def exact_neighbours(vectors_path: Path, queries: np.ndarray) -> np.ndarray:
    """Each query's exact top 10 (row numbers), reading the vectors chunk by chunk."""
    x = np.load(vectors_path, mmap_mode="r")
    store = VectorStore(DIM)
    store.parts.append((np.arange(len(x), dtype=np.int64), x))
    truth = exact_top_k(store, queries, K)
    del store, x
    # This file is the benchmark's own copy of the vectors (a served index has none): out of
    # the OS cache again, so that it does not crowd out the index's vectors there.
    fd = os.open(vectors_path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return truth


def server_memory(server: subprocess.Popen) -> dict:
    """The server's resident memory now and at its peak, from /proc."""
    fields = {}
    for line in Path(f"/proc/{server.pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024**2
    return {"rss_gib": fields.get("VmRSS"), "peak_rss_gib": fields.get("VmHWM")}


def run_size(n: int, data: str, kind: str, pipeline, queries: list[str], args, work: Path
             ) -> dict:
    folder = work / f"n{n}-{data}-{kind}"
    folder.mkdir()
    built = build(n, args, folder, data, kind)
    path = folder / "index"
    started = time.perf_counter()
    index = EmbeddingIndex.load(path)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    EmbeddingIndex.load(path, vectors=False)
    load_items_s = time.perf_counter() - started
    retriever = Retriever(RetrievalPipeline.load(path / MODEL_DIR), index)
    retriever.limit_threads(1)  # as `fglab serve` does by default
    set_search_threads(1)  # for the raw faiss searches made from this thread
    vectors = np.ascontiguousarray(retriever.pipeline.encode_texts(queries), dtype=np.float32)
    truth = exact_neighbours(folder / "x.npy", vectors)
    result = {"n": n, "data": data, "asked_kind": kind, **built, "load_s": load_s,
              "load_items_only_s": load_items_s}
    server, base, result["server_start_s"] = start_server(path)
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            result["load_average_start"] = load_average()
            measured = time_text_queries(index, retriever, http, queries, vectors, args.rounds)
            result["load_average_end"] = load_average()
        result["server"] = server_memory(server)
    finally:
        stop_server(server)
    result["paths"] = path_summaries(measured, truth)
    if args.remove_fraction and n == max(args.sizes):
        result["after_removal"] = after_removal(path, index, retriever, queries, vectors, truth,
                                                args)
    if n == max(args.sizes) and not args.no_index_add:
        del index, retriever
        result["index_add"] = index_add(path, pipeline, folder)
    shutil.rmtree(folder)
    return result


def path_summaries(measured: dict, truth: np.ndarray) -> dict:
    raw_p50 = np.percentile(measured["times"]["raw faiss"], 50)
    return {
        name: {
            **summary(times),
            "recall_at_10": recall(measured["found"][name], truth),
            "vs_raw_p50": float(np.percentile(times, 50) / raw_p50),
        }
        for name, times in measured["times"].items()
    }


def after_removal(path: Path, index, retriever, queries, vectors, truth, args) -> dict:
    """Remove a fraction of the items (index-remove's path), load again, and time the queries
    in process on the index before and after the removal, alternately (the same moments)."""
    n = index.count("image")
    step = max(1, round(1 / args.remove_fraction))
    metadata = EmbeddingIndex.load(path, vectors=False)
    started = time.perf_counter()
    metadata.remove([f"img-{i}" for i in range(0, n, step)])
    metadata.save_changes(path)
    remove_s = time.perf_counter() - started
    reloaded = Retriever(retriever.pipeline, EmbeddingIndex.load(path))
    reloaded.limit_threads(1)
    before, after = [], []
    for _ in range(args.rounds):
        for query in queries:
            for searcher, times in ((retriever, before), (reloaded, after)):
                started = time.perf_counter()
                searcher.search_text(query, K)
                times.append((time.perf_counter() - started) * 1000)
    return {"removed": len(range(0, n, step)), "remove_s": remove_s,
            "before_p50_ms": float(np.percentile(before, 50)),
            "after_p50_ms": float(np.percentile(after, 50)),
            "ratio": float(np.percentile(after, 50) / np.percentile(before, 50))}


def index_add(path: Path, pipeline, folder: Path) -> dict:
    """10 text items added through the API (load items, embed, commit) and through the CLI."""
    texts = [f"新增的新闻 {i} 经济 教育 体育" for i in range(10)]
    started = time.perf_counter()
    index = EmbeddingIndex.load(path, vectors=False)
    loaded = time.perf_counter()
    items = [Item(f"txt-api-{i}", "text", f"api-{i}", text=t) for i, t in enumerate(texts)]
    index.add(items, pipeline.encode_texts(texts))
    index.save_changes(path)
    api = {"load_items_s": loaded - started, "total_s": time.perf_counter() - started}
    manifest = folder / "ten.jsonl"
    manifest.write_text(
        "".join(json.dumps({"id": f"cli-{i}", "text": t}, ensure_ascii=False) + "\n"
                for i, t in enumerate(texts)),
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "fglab", "index-add", str(path),
               "--dataset", f"manifest:{manifest}"]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=server_env(), capture_output=True)
    cli_s = time.perf_counter() - started
    started = time.perf_counter()
    after = EmbeddingIndex.load(path)
    reload_s = time.perf_counter() - started
    assert after.count("text") == 20, after.count("text")
    listing = json.loads((path / "index.json").read_text())
    return {
        "api": api,
        "cli_s": cli_s,
        "load_after_s": reload_s,
        "segments": len(listing["segments"]),
        "load_average": load_average(),
    }


# -- image queries ---------------------------------------------------------------------------


def image_queries(args) -> dict:
    from fglab.data.wikipedia import load_dataset

    index = args.image_index
    if not (index / "index.json").is_file():
        subprocess.run([sys.executable, "-m", "fglab", "index", str(args.run), "--dataset",
                        "chinese-news", "--split", "all", "--out", str(index)], check=True)
    test = load_dataset("chinese-news", args.data_root, log_problems_found=False).test
    uploads = [p.read_bytes() for p in test.image_paths if p is not None][: args.images]
    retriever = Retriever.open(index)
    retriever.limit_threads(1)  # as `fglab serve` does by default
    times: dict[str, list[float]] = {"Retriever": [], "HTTP": []}
    server, base, start_s = start_server(index)
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            def via_http(data: bytes) -> None:
                files = {"file": ("upload.jpg", data)}
                http.post("/search/image", files=files, data={"k": str(K)}).raise_for_status()

            paths = {"Retriever": lambda d: retriever.search_image(d, K), "HTTP": via_http}
            for data in uploads[:3]:
                for fn in paths.values():
                    fn(data)
            load_start = load_average()
            for name, fn in paths.items():
                for data in uploads:
                    started = time.perf_counter()
                    fn(data)
                    times[name].append((time.perf_counter() - started) * 1000)
    finally:
        stop_server(server)
    return {
        "index": str(index),
        "items": retriever.index.count("image") + retriever.index.count("text"),
        "uploads": len(uploads),
        "upload_kb_median": float(np.median([len(d) for d in uploads]) / 1024),
        "server_start_s": start_s,
        "load_average": [load_start, load_average()],
        "paths": {name: summary(t) for name, t in times.items()},
    }


# -- report ----------------------------------------------------------------------------------


def print_tables(result: dict) -> None:
    print("\n| items | data | index | path | p50 ms | p99 ms | recall@10 | p50 vs raw faiss |")
    print("|---|---|---|---|---|---|---|---|")
    for size in result["sizes"]:
        for name, p in size["paths"].items():
            print(f"| {size['n']:,} | {size['data']} | {size['kind']} | {name} | "
                  f"{p['p50_ms']:.2f} | {p['p99_ms']:.2f} | {p['recall_at_10']:.3f} | "
                  f"{p['vs_raw_p50']:.2f}× |")
    print("\n| items | data | index | build s | save s | build peak RSS GiB | load s | server "
          "RSS GiB (peak) | server start s | load average |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in result["sizes"]:
        server = s.get("server", {})
        print(f"| {s['n']:,} | {s['data']} | {s['kind']} | {s['build_s']:.1f} | "
              f"{s['save_s']:.1f} | "
              f"{s['build_peak_rss_gib']:.2f} | {s['load_s']:.2f} | "
              f"{server.get('rss_gib', 0):.2f} ({server.get('peak_rss_gib', 0):.2f}) | "
              f"{s['server_start_s']:.1f} | {s['load_average_start']} → "
              f"{s['load_average_end']} |")
        if "after_removal" in s:
            r = s["after_removal"]
            print(f"\nafter removing {r['removed']:,} of {s['n']:,} ({s['data']}, {s['kind']}): "
                  f"Retriever p50 "
                  f"{r['before_p50_ms']:.2f} → {r['after_p50_ms']:.2f} ms ({r['ratio']:.2f}×)")
    for s in result["sizes"]:
        if "index_add" in s:
            a = s["index_add"]
            print(f"\nindex-add of 10 items to {s['n']:,}: API {a['api']['total_s']:.3f} s "
                  f"(items loaded in {a['api']['load_items_s']:.3f} s), `fglab index-add` "
                  f"{a['cli_s']:.2f} s (whole process); load afterwards {a['load_after_s']:.2f} s")
    if "images" in result:
        im = result["images"]
        print(f"\nimage queries ({im['uploads']} chinese-news uploads, median "
              f"{im['upload_kb_median']:.0f} KB, index of {im['items']} items, load average "
              f"{im['load_average'][0]} → {im['load_average'][1]}):")
        for name, p in im["paths"].items():
            print(f"  {name}: p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms")


def common_arguments(parser: argparse.ArgumentParser, out: Path) -> None:
    """The queries, the stand-in model's run, the data root, seed, scratch folder and output."""
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the queries")
    parser.add_argument("--run", type=Path, default=Path("runs/chinese-news-sm"),
                        help="a chinese-news run (`fglab train chinese-news --method sm`)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--out", type=Path, default=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000",
                        type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--data", default="isotropic", type=lambda s: s.split(","),
                        help="comma-separated: isotropic (the worst case), clustered")
    parser.add_argument("--remove-fraction", type=float, default=0.0,
                        help="at the largest size, remove this fraction and time again")
    parser.add_argument("--no-index-add", action="store_true")
    parser.add_argument("--kind", default=["auto"], type=lambda s: s.split(","),
                        help="comma-separated index kinds (default auto); e.g. auto,pq to "
                        "measure the earlier default beside it in the same run")
    parser.add_argument("--image-index", type=Path, default=Path("runs/chinese-news-index"))
    parser.add_argument("--images", type=int, default=100, help="image uploads to time")
    parser.add_argument("--no-images", action="store_true")
    common_arguments(parser, Path("results/bench/search_end_to_end.json"))
    args = parser.parse_args()
    pipeline = synthetic_pipeline(args.run)
    queries = query_texts(pipeline, args.queries, args.data_root)
    result: dict = {"load_average_start": load_average(), "queries": len(queries),
                    "rounds": args.rounds, "cpus": os.cpu_count(), "sizes": []}
    with tempfile.TemporaryDirectory(prefix="fglab-e2e-", dir=args.work) as work:
        for n in args.sizes:
            for data, kind in ((d, k) for d in args.data for k in args.kind):
                print(f"n={n:,} ({data}, {kind}): building, loading, timing ...", flush=True)
                result["sizes"].append(run_size(n, data, kind, pipeline, queries, args,
                                                Path(work)))
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result, indent=2))  # each size as it ends
    if not args.no_images:
        print("image queries ...", flush=True)
        result["images"] = image_queries(args)
    result["load_average_end"] = load_average()
    print_tables(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"\nload average {result['load_average_start']} → {result['load_average_end']}; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
