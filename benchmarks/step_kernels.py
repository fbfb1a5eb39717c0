"""Kernels of an fglab fit, each timed against its alternatives in the same run, rounds
interleaved (these machines are shared and noisy): the graph convolution of eng-wiki training
texts on its word graph with several documents per pass (``fglab.models.gcn.CHUNK_SIGNALS``),
for one training step (forward and backward, 128 documents) and for one encoding batch
(forward only, 512 documents, as validation and indexing run it); and the ranking behind MAP
(a validation-sized 433 x 433 score matrix) by NumPy's stable argsort and by
``fglab.metrics.rank_gallery`` (torch's stable sort).

    python benchmarks/step_kernels.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

import fglab.models.gcn as gcn
from fglab.config import ModelConfig
from fglab.data.graph import knn_graph, scaled_laplacian
from fglab.data.root import resolve_data_root
from fglab.data.wikipedia import load_dataset
from fglab.features.views import build_features, default_image_view
from fglab.features.word_vectors import word_vectors
from fglab.metrics import rank_gallery
from fglab.training.tensors import ENCODE_BATCH, dense_tensor

BATCH = 128
RANKED = 433  # eng-wiki's validation fifth


def _milliseconds(fn: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def _report(title: str, times: dict[str, list[float]]) -> None:
    baseline = statistics.median(next(iter(times.values())))
    print(f"\n{title}\n| variant | median ms | min ms | vs first |\n|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {min(values):.2f} | {median / baseline:.2f}× |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    dataset = load_dataset("eng-wiki", resolve_data_root(args.data_root))
    train, _ = build_features(dataset, default_image_view(dataset), "text:tfidf")
    vectors = word_vectors(list(train.vocabulary), train.language, train.tokens, 0)
    laplacian = scaled_laplacian(knn_graph(vectors, ModelConfig().graph_k))
    torch.manual_seed(0)
    stack = gcn.GraphConvStack(laplacian, ModelConfig().gcn_filters, ModelConfig().cheb_k)
    signal = dense_tensor(train.texts[:BATCH]) * ModelConfig().signal_scale

    def step() -> None:
        stack.zero_grad()
        stack(signal).sum().backward()

    chunks = {f"{n} documents per pass": n * stack.n_nodes for n in (BATCH, 64, 32)}
    conv_times: dict[str, list[float]] = {name: [] for name in chunks}
    for _ in range(args.rounds):
        for name, signals in chunks.items():
            gcn.CHUNK_SIGNALS = signals
            step()  # warm
            conv_times[name].append(_milliseconds(step, 5))
    _report(f"graph convolution, forward + backward, {BATCH} documents, "
            f"{stack.n_nodes} words", conv_times)

    encoded = dense_tensor(train.texts[:ENCODE_BATCH]) * ModelConfig().signal_scale
    chunks = {f"{n} documents per pass": n * stack.n_nodes for n in (ENCODE_BATCH, 128, 64)}
    encode_times: dict[str, list[float]] = {name: [] for name in chunks}
    with torch.no_grad():
        for _ in range(args.rounds):
            for name, signals in chunks.items():
                gcn.CHUNK_SIGNALS = signals
                encode_times[name].append(_milliseconds(lambda: stack(encoded), 3))
    _report(f"graph convolution, forward only (encoding), {ENCODE_BATCH} documents", encode_times)

    scores = np.random.default_rng(0).normal(size=(RANKED, RANKED))
    numpy_order = np.argsort(-scores, axis=1, kind="stable")
    if not np.array_equal(numpy_order, rank_gallery(scores)):
        raise SystemExit("rank_gallery's order differs from NumPy's stable argsort")
    sorts = {
        "NumPy stable argsort": lambda: np.argsort(-scores, axis=1, kind="stable"),
        "rank_gallery (torch stable sort)": lambda: rank_gallery(scores),
    }
    sort_times: dict[str, list[float]] = {name: [] for name in sorts}
    for _ in range(args.rounds):
        for name, fn in sorts.items():
            sort_times[name].append(_milliseconds(fn, 10))
    _report(f"ranking a {RANKED} x {RANKED} score matrix (the same order)", sort_times)


if __name__ == "__main__":
    main()
