"""The cluster options of ``fglab index``, ``index-add`` and ``serve`` and what they run.

``--shards N`` alone builds a sharded index in this process; ``--ray ADDRESS`` runs the
embedding and the shard builds (or the shard servers) on a Ray cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm


def index_arguments(parser: argparse.ArgumentParser, shards: bool) -> None:
    _ray_argument(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="with --ray: embedding workers, one model and one CPU each (default: the "
        "cluster's CPUs)",
    )
    if shards:
        parser.add_argument(
            "--shards",
            type=int,
            default=None,
            help="split the index over N shards, each its own faiss index (default with "
            "--ray: one per node; without --ray: one unsharded index)",
        )


def serve_arguments(parser: argparse.ArgumentParser) -> None:
    _ray_argument(parser)
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="with --ray: replicas of each shard, each on a different node (default 1)",
    )


def _ray_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help='run on the Ray cluster at ADDRESS (HOST:PORT, or auto); needs pip install -e '
        '".[cluster]"',
    )


def backend_for(args: argparse.Namespace):
    from fglab.cluster.backend import LocalBackend, connect

    if getattr(args, "ray", None) is None:
        return LocalBackend()
    return connect(args.ray, workers=getattr(args, "workers", None))


def _splits(args: argparse.Namespace) -> list[str]:
    return ["train", "test"] if args.split == "all" else ["test"]


def _bar(collection, splits):
    from fglab.index.build import collection_size

    return tqdm(total=collection_size(collection, splits), unit="item", desc="embedding")


def build(args: argparse.Namespace) -> int:
    """``fglab index ... --shards N`` / ``--ray ADDRESS``."""
    from fglab.cluster.shards import build_sharded
    from fglab.index.build import load_collection
    from fglab.index.store import IndexSettings
    from fglab.pipeline import RetrievalPipeline

    backend = backend_for(args)
    shards = args.shards if args.shards is not None else (
        len(backend.nodes()) if hasattr(backend, "nodes") else 1
    )
    pipeline = RetrievalPipeline.load(Path(args.run))
    collection = load_collection(args.dataset, args.data_root)
    splits = _splits(args)
    with _bar(collection, splits) as bar:
        counts, skipped = build_sharded(
            backend, Path(args.run), pipeline, collection, args.out, shards, splits,
            IndexSettings(kind=args.kind), progress=bar.update,
        )
    _report(args.out, counts, skipped, shards)
    return 0


def add(args: argparse.Namespace) -> int:
    """``fglab index-add`` on a sharded index (with or without ``--ray``)."""
    from fglab.cluster.shards import add_to_sharded
    from fglab.index.build import load_collection

    backend = backend_for(args)
    collection = load_collection(args.dataset, args.data_root)
    splits = _splits(args)
    with _bar(collection, splits) as bar:
        counts, skipped = add_to_sharded(backend, args.index, collection, splits, bar.update)
    _report(args.index, counts, skipped, None)
    return 0


def _report(path: Path, counts: dict, skipped: list[str], shards: int | None) -> None:
    for line in skipped:
        print(f"skipped: {line}")
    added = ", ".join(f"{counts.get(m, 0)} {m}s" for m in ("image", "text"))
    where = f" over {shards} shards" if shards else ""
    print(f"wrote {path}: {added}{where}")


def open_retriever(args: argparse.Namespace, load_pipeline):
    """The retriever of ``fglab serve INDEX --ray ADDRESS`` and its backend (to close)."""
    from fglab.cluster.serve import open_cluster_retriever

    backend = backend_for(args)
    retriever = open_cluster_retriever(args.index, backend, args.replicas, load_pipeline)
    return retriever, backend
