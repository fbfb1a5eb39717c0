"""The Ray adapter of :class:`fglab.ingest.backend.Backend`: Ray Data embeds (and, for a
sharded build, its workers stage the vectors in the shared build folder), Ray tasks write the
shards, Ray Serve serves them (:mod:`fglab.cluster.serve`). :func:`connect` joins a cluster.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from tqdm import tqdm

from fglab.cluster.embed import ray_embed, ray_embed_staged
from fglab.ingest.backend import Backend

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[cluster]"'


class ClusterError(ValueError):
    """A cluster that cannot be used: Ray missing, an address that does not answer."""


class RayBackend(Backend):
    """Ray Data embeds, Ray tasks build shards, Ray Serve serves them (see
    :mod:`fglab.cluster.serve`)."""

    name = "ray"

    def __init__(self, address: str, workers: int | None = None, cpus_per_replica: float = 1.0,
                 cache_dir: str | None = None):
        self.cache_dir = cache_dir  # image feature cache on each node (default: its own)
        self.address = address
        self.workers = workers
        self.cpus_per_replica = cpus_per_replica
        self.apps: list[str] = []

    def nodes(self) -> list[dict]:
        import ray

        return [n for n in ray.nodes() if n.get("Alive")]

    def cpus(self) -> int:
        import ray

        return int(ray.cluster_resources().get("CPU", 1))

    def embed(self, pipeline, rows, progress=None):
        workers = self.workers or max(1, self.cpus())
        return ray_embed(pipeline, rows, workers, progress, self.cache_dir)

    def embed_staged(self, pipeline, blocks, staging, batch, progress=None):
        workers = self.workers or max(1, self.cpus())
        return ray_embed_staged(pipeline, blocks, staging, batch, workers, progress,
                                self.cache_dir)

    def map(self, fn, tasks, what="tasks"):
        import ray

        remote = ray.remote(num_cpus=1)(fn)
        pending = [remote.remote(task) for task in tasks]
        with tqdm(pending, desc=what, unit="task", leave=False) as bar:
            return [ray.get(ref) for ref in bar]

    def serve_shards(self, index_dir, listing, replicas):
        from fglab.cluster.serve import deploy_shards

        nodes = len(self.nodes())
        if replicas > nodes:
            raise ClusterError(
                f"--replicas {replicas} needs {replicas} nodes (one replica of a shard per "
                f"node); the cluster at {self.address} has {nodes}"
            )
        parts, self.apps = deploy_shards(Path(index_dir), listing, replicas,
                                         self.cpus_per_replica)
        return parts

    def close(self) -> None:
        from fglab.cluster.serve import undeploy

        undeploy(self.apps)
        self.apps = []


def connect(address: str, workers: int | None = None, cpus_per_replica: float = 1.0
            ) -> RayBackend:
    """Join the Ray cluster at ``address`` (``HOST:PORT`` of its head, or ``auto``); a
    :class:`ClusterError` with one line if Ray is not installed or the cluster not reached."""
    try:
        import ray
    except ImportError as error:
        raise ClusterError(f"--ray needs Ray, an optional extra: {INSTALL_HINT}") from error
    if not address or address.startswith("-"):
        raise ClusterError(f"--ray needs a cluster address (HOST:PORT or auto), got {address!r}")
    if address != "auto":
        _probe(address)
    if not ray.is_initialized():
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                     include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError, OSError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ClusterError(
                f"no Ray cluster answers at {address!r} ({first[:200]}); start one with "
                "`ray start --head` and pass its address"
            ) from error
    return RayBackend(address, workers, cpus_per_replica)


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast where nothing listens at ``address`` (Ray itself would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray needs HOST:PORT or auto, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({error.strerror or error}); start one with "
            "`ray start --head` and pass the address it prints"
        ) from error
