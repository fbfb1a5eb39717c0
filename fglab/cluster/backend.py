"""The engine under a distributed build or server, behind three calls another engine could
implement: embed rows with one model per worker, map a function over tasks, and serve an index's
shards (each shard's parts searchable from this process).

:class:`LocalBackend` does all three in this process; :class:`RayBackend` uses Ray Data and
Ray Serve (:func:`connect`).
"""

from __future__ import annotations

import logging
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm import tqdm

from fglab.cluster.embed import Embedded, local_embed, model_files

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[cluster]"'
Progress = Callable[[int], None]


class ClusterError(ValueError):
    """A cluster that cannot be used: Ray missing, an address that does not answer."""


class Backend(ABC):
    """Where embedding, shard building and shard serving run."""

    name = "backend"

    @abstractmethod
    def embed(self, run_dir: Path, rows: list[dict], progress: Progress | None = None
              ) -> Iterator[Embedded]:
        """Embed ``rows`` (:mod:`fglab.cluster.embed`) with the run at ``run_dir``; batches
        in any order."""

    @abstractmethod
    def map(self, fn: Callable, tasks: list, what: str = "tasks") -> list:
        """``[fn(task) for task in tasks]``, run where the engine runs work."""

    @abstractmethod
    def serve_shards(self, index_dir: Path, listing: dict, replicas: int) -> dict[str, list]:
        """Start serving an index's shards; per modality, one part per shard
        (:class:`fglab.cluster.shards.ShardPart`)."""

    def close(self) -> None:  # noqa: B027 (a backend that starts nothing stops nothing)
        """Stop what :meth:`serve_shards` started."""


class LocalBackend(Backend):
    """Everything in this process: the reference the distributed engines are checked against."""

    name = "local"

    def __init__(self, cache_dir: str | None = None):
        self.cache_dir = cache_dir

    def embed(self, run_dir, rows, progress=None):
        return local_embed(model_files(run_dir), rows, progress, self.cache_dir)

    def map(self, fn, tasks, what="tasks"):
        return [fn(task) for task in tqdm(tasks, desc=what, unit="task", leave=False)]

    def serve_shards(self, index_dir, listing, replicas):
        from fglab.cluster.shards import LocalShard
        from fglab.index.disk import read_faiss

        parts: dict[str, list] = {m: [] for m in listing["modalities"]}
        for shard in listing["shards"]:
            for modality in parts:
                path = Path(index_dir) / shard["dir"] / f"{modality}.faiss"
                parts[modality].append(LocalShard(read_faiss(path, listing["dim"])))
        return parts


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

    def embed(self, run_dir, rows, progress=None):
        from fglab.cluster.embed import ray_embed

        workers = self.workers or max(1, self.cpus())
        return ray_embed(model_files(run_dir), rows, workers, progress, self.cache_dir)

    def map(self, fn, tasks, what="tasks"):
        import ray

        remote = ray.remote(num_cpus=1)(fn)
        pending = [remote.remote(task) for task in tasks]
        results = []
        for ref in tqdm(pending, desc=what, unit="task", leave=False):
            results.append(ray.get(ref))
        return results

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
