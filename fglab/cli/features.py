"""``fglab features DATASET|manifest:PATH [--view V] [--ray ADDRESS]``: featurize a collection
ahead of training into the feature store, printing every input that failed with its id and
reason, and the rate at the end. A killed run keeps its finished shards: run it again and
only the rest is computed. ``fglab train`` then reads the features from the store.

The work is :func:`fglab.features.featurize.featurize`'s reader -> embedder -> writer: in
this process by default, or with ``--ray`` the embedder on Ray Data workers, one model each
(:mod:`fglab.cluster.features`); either way this process writes the store, with the models
and decoding that training uses.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tqdm import tqdm

from fglab.cli.train import add_model_path_argument
from fglab.data.collection import load_collection
from fglab.data.manifest import Manifest
from fglab.data.problems import printable
from fglab.data.sources import CollectionSource, parse_source
from fglab.features.featurize import (
    FEATURE_VIEWS,
    Featurized,
    featurize,
    stored_parts,
    view_kind,
    view_store,
)
from fglab.features.model_folder import current_folder, uses_model_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "features", help="featurize a data set or manifest into the feature store"
    )
    parser.add_argument(
        "name", help="data set name under the data root, a folder, or manifest:PATH"
    )
    parser.add_argument(
        "--view", default="image:efficientnet-lite0",
        help=f"feature view, one of: {', '.join(FEATURE_VIEWS)}, or several image views "
        "side by side (image:efficientnet-lite0+efficientnet-lite2: each part is stored) "
        "(default: image:efficientnet-lite0); image:clip and text:clip need --model-path",
    )
    add_model_path_argument(parser)
    parser.add_argument(
        "--cache-dir", type=Path, default=None,
        help="feature store (default: $FGLAB_CACHE/features, else ~/.cache/fglab/features)",
    )
    parser.add_argument(
        "--ray", metavar="ADDRESS", default=None,
        help='compute on the Ray cluster at ADDRESS (HOST:PORT, or auto); needs pip install -e '
        '".[cluster]"; image files must be at the same path on every node',
    )
    parser.add_argument(
        "--workers", type=int, default=None,
        help="with --ray: workers, one model and one CPU each (default: the cluster's CPUs)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = parse_source(args.name)
    if args.model_path is not None:  # a bad folder is one line before any work
        from fglab.features.pretrained import use_model

        use_model(args.model_path)
    if uses_model_folder(args.view):
        current_folder(args.view)  # none given: says how, before any work
    for view in stored_parts(args.view):  # a joined view: each part into its store
        featurize_view(args, source, view)
    return 0


def featurize_view(args: argparse.Namespace, source: CollectionSource, view: str) -> None:
    """Featurize ``source`` in view ``view`` into its store, printing failures and rates."""
    kind = view_kind(view)
    groups, notes = _groups(source, args.data_root, kind)
    for line in notes:
        print(printable(line, None))
    compute = _in_process if args.ray is None else _on_ray(args)
    total_failed = total = 0
    for label, ids, inputs in groups:
        shown = printable(label, None)  # a collection's name and ids: escaped
        start = time.perf_counter()
        done = compute(view, inputs, args.cache_dir)
        seconds = time.perf_counter() - start
        for row, reason in done.failures.items():
            print(f"[{shown}] {printable(ids[row], None)}: {printable(reason, None)}")
        total_failed += len(done.failures)
        total += len(inputs)
        unit = "images" if kind == "image" else "texts"
        print(
            f"{shown}: {len(inputs)} {unit} -> {done.dim}-d {view} in {seconds:.1f} s "
            f"({len(inputs) / max(seconds, 1e-9):.0f} {unit}/s, {done.computed} computed), "
            f"{len(done.failures)} failed"
        )
    store, _ = view_store(view, args.cache_dir)
    print(f"{total} inputs, {total_failed} failed (zero features); store: {store.folder}")


def _groups(
    source: CollectionSource, data_root, kind: str
) -> tuple[list[tuple[str, list, list]], list[str]]:
    """(label, ids for reporting, inputs) per part of the collection, and lines to print
    first (what the loader skipped)."""
    dataset = load_collection(source, data_root, log_problems_found=False)  # printed below
    if isinstance(dataset, Manifest):
        label, manifest = source.label, dataset
        rows = [m for m in manifest.items if (m.image_path if kind == "image" else m.text)]
        if not rows:
            raise ValueError(f"{label}: no row has {'an image' if kind == 'image' else 'a text'}")
        ids = [f"row {m.row} (id {m.id})" for m in rows]
        inputs = [m.image_path if kind == "image" else m.text for m in rows]
        return [(label, ids, inputs)], [f"skipped by the loader: {p}" for p in manifest.problems]
    if kind == "image" and not dataset.has_images:
        raise ValueError(f"data set {dataset.name!r} has no images/ folder to extract from")
    skipped = [p for p in dataset.problems if p.kind in ("missing_image", "unreadable_image")]
    notes = [f"skipped by the loader: {p}" for p in skipped]
    groups = []
    for split in (dataset.train, dataset.test):
        label = f"{dataset.name} {split.name}"
        if kind == "image":
            ids = [f"image {i} (text {t})" for i, t in zip(split.image_ids, split.text_ids,
                                                           strict=True)]
            groups.append((label, ids, list(split.image_paths)))
        else:
            groups.append((label, [f"text {t}" for t in split.text_ids], list(split.texts)))
    return groups, notes


def _in_process(view: str, inputs: list, cache_dir: Path | None) -> Featurized:
    return _with_bar(view, inputs, cache_dir, None, "")


def _on_ray(args: argparse.Namespace):
    from fglab.cluster.backend import connect
    from fglab.cluster.features import ray_engine

    backend = connect(args.ray, workers=args.workers)
    workers = args.workers or max(1, backend.cpus())

    def engine(view, jobs, progress):
        return ray_engine(view, jobs, workers, progress)

    def compute(view: str, inputs: list, cache_dir: Path | None) -> Featurized:
        return _with_bar(view, inputs, cache_dir, engine, f" on Ray ({workers} workers)")

    return compute


def _with_bar(view: str, inputs: list, cache_dir: Path | None, engine, where: str
              ) -> Featurized:
    with tqdm(desc=f"{view}{where}", unit="input") as bar:
        def planned(jobs: int) -> None:
            bar.total = jobs
            bar.refresh()

        return featurize(view, inputs, cache_dir, engine, progress=bar.update, on_plan=planned)
