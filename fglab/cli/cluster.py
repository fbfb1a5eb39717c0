"""The cluster options of ``fglab index``, ``index-add`` and ``serve``, and the backend they
choose: ``--shards N`` alone builds a sharded index in this process; ``--ray ADDRESS`` runs
the embedding and the shard builds (or the shard servers) on a Ray cluster."""

from __future__ import annotations

import argparse


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


def backend_for(address: str | None, workers: int | None = None):
    """This process's backend, or Ray's at ``address`` (``None``: no cluster)."""
    from fglab.ingest.backend import LocalBackend

    if address is None:
        return LocalBackend()
    from fglab.cluster.backend import connect

    return connect(address, workers=workers)


def default_shards(backend, shards: int | None) -> int:
    """``--shards``, or one shard per node of a cluster (1 in this process)."""
    if shards is not None:
        return shards
    return len(backend.nodes()) if hasattr(backend, "nodes") else 1


def open_retriever(index_dir, address: str, replicas: int, load_pipeline):
    """The retriever of ``fglab serve INDEX --ray ADDRESS`` and its backend (to close)."""
    from fglab.cluster.serve import open_cluster_retriever

    backend = backend_for(address)
    retriever = open_cluster_retriever(index_dir, backend, replicas, load_pipeline)
    return retriever, backend
