"""Serving a sharded index on Ray Serve: one deployment per shard, its replicas on different
nodes; this process routes each query to every shard and merges their top k.

Each replica reads its shard's faiss files from the index directory (at the same path on every
node: a shared file system), after checking them against the listing's SHA-256. Serve checks
replicas' health and restarts the ones that die; the router asks a shard again when its replica
dies under a query, and a shard that has no live replica for :data:`DEADLINE_S` is an outage
(:class:`fglab.retriever.ShardUnavailableError`: HTTP 503 with ``Retry-After``). The HTTP side
stays :func:`fglab.service.app.create_app` over a :class:`fglab.retriever.Retriever` whose
index searches through :class:`RemoteShard` parts. Only Ray's public API is used (the
placement of replicas comes from its state API, :func:`replica_actors`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fglab.index.atomic import LISTING
from fglab.integrity import check_files

logger = logging.getLogger(__name__)

#: How long a query waits for one shard, over all its tries, before that shard counts as
#: down (:class:`fglab.retriever.ShardUnavailableError`, HTTP 503): long enough to ride out a
#: replica that Serve restarts, short enough for a client to try again later.
DEADLINE_S = 10.0
#: Pause before the n-th retry: n x this.
RETRY_PAUSE_S = 0.25
#: The Serve deployment of each shard's application.
DEPLOYMENT = "shard"


class ShardReplica:
    """One replica of one shard: its faiss index per modality, searched on request."""

    def __init__(self, index_dir: str, number: int):
        import ray

        from fglab.index.vectors import read_faiss, set_search_threads

        root = Path(index_dir)
        listing = json.loads((root / LISTING).read_text(encoding="utf-8"))
        shard = listing["shards"][number]
        prefix = f"{shard['dir']}/"
        files = {n: e for n, e in listing["files"].items() if n.startswith(prefix)}
        check_files(root, files, LISTING, "build the index again")
        self.indexes = {
            m: read_faiss(root / shard["dir"] / f"{m}.faiss", listing["dim"])
            for m in listing["modalities"]
        }
        set_search_threads(1)  # replicas answer queries side by side
        self.number = number
        self.node_id = ray.get_runtime_context().get_node_id()

    def search(self, queries: np.ndarray, modality: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = self.indexes[modality]
        if index.ntotal == 0:
            empty = np.zeros((len(queries), 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        return index.search(np.ascontiguousarray(queries, np.float32), min(k, index.ntotal))

    def node(self) -> str:
        return self.node_id

    def check_health(self) -> None:
        if not self.indexes:
            raise RuntimeError(f"shard {self.number} holds no index")


class RemoteShard:
    """A shard's deployment, seen as one searchable part of one modality."""

    def __init__(self, handle, modality: str, number: int):
        self.handle = handle
        self.modality = modality
        self.number = number

    def submit(self, queries: np.ndarray, k: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        response = self.handle.search.remote(queries, self.modality, k)
        return lambda: self._wait(response, queries, k)

    def _wait(self, response, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The shard's answer; a replica that dies or does not answer is asked again (Serve
        routes to a live one) until :data:`DEADLINE_S`, then the shard counts as down."""
        from ray.exceptions import RayError, RayTaskError

        from fglab.retriever import ShardUnavailableError

        deadline = time.monotonic() + DEADLINE_S
        problem: BaseException | None = None
        tries = 0
        while (left := deadline - time.monotonic()) > 0:
            try:
                return response.result(timeout_s=left)
            except RayTaskError:
                raise  # the search itself failed: no other replica would do better
            except (RayError, TimeoutError) as error:  # the replica died or did not answer
                problem, tries = error, tries + 1
                response.cancel()  # a request still queued for a replica is dropped
                logger.warning("shard %d: no answer (%s); trying again", self.number,
                               type(error).__name__)
                time.sleep(max(0.0, min(RETRY_PAUSE_S * tries, deadline - time.monotonic())))
                response = self.handle.search.remote(queries, self.modality, k)
        raise ShardUnavailableError(
            f"shard {self.number} did not answer within {DEADLINE_S:g} s ({tries} tries, "
            f"{type(problem).__name__}): it has no live replica now; try again shortly"
        )


def app_prefix(index_dir: Path) -> str:
    """Serve application names of an index: one per shard, the same for the same folder."""
    digest = hashlib.sha256(str(Path(index_dir).resolve()).encode()).hexdigest()[:10]
    return f"fglab-{digest}"


def deploy_shards(
    index_dir: Path, listing: dict, replicas: int, cpus_per_replica: float = 1.0
) -> tuple[dict[str, list[RemoteShard]], list[str]]:
    """Run one Serve application per shard, ``replicas`` replicas each, at most one per node.
    Returns the shard parts per modality and the applications' names."""
    from ray import serve

    if replicas < 1:
        raise ValueError(f"--replicas must be at least 1, got {replicas}")
    serve.start(proxy_location="Disabled")  # HTTP is fglab's own server, not Serve's proxy
    deployment = serve.deployment(
        ShardReplica,
        name=DEPLOYMENT,
        num_replicas=replicas,
        max_replicas_per_node=1,
        ray_actor_options={"num_cpus": cpus_per_replica},
        health_check_period_s=2,
        health_check_timeout_s=10,
    )
    parts: dict[str, list[RemoteShard]] = {m: [] for m in listing["modalities"]}
    names = []
    prefix = app_prefix(index_dir)
    for number in range(len(listing["shards"])):
        name = f"{prefix}-{number:03d}"
        handle = serve.run(
            deployment.bind(str(Path(index_dir).resolve()), number), name=name, route_prefix=None
        )
        names.append(name)
        for modality, found in parts.items():
            found.append(RemoteShard(handle, modality, number))
    return parts, names


def undeploy(names: list[str]) -> None:
    """Delete the Serve applications ``deploy_shards`` started."""
    if not names:
        return
    from ray import serve

    for name in names:
        serve.delete(name)  # waits until the application is gone


def replica_actors(name: str) -> list:
    """The live replica actors of one application (:class:`ray.util.state.common.ActorState`:
    ``name``, ``ray_namespace``, ``node_id``, ...), from Ray's public state API. Serve names
    a replica's actor class ``ServeReplica:<application>:<deployment>``. The state API is
    served by the head's dashboard (``ray start --head`` starts it)."""
    from ray.util.state import list_actors
    from ray.util.state.exception import ServerUnavailable

    try:
        return list_actors(
            filters=[("class_name", "=", f"ServeReplica:{name}:{DEPLOYMENT}"),
                     ("state", "=", "ALIVE")],
            limit=10_000,
            raise_on_missing_output=False,
        )
    except ServerUnavailable as error:
        raise RuntimeError(
            "where replicas run comes from Ray's state API, which the head node's dashboard "
            "serves: start the head with it (`ray start --head` does, unless "
            "--include-dashboard=false)"
        ) from error


def replica_nodes(names: list[str]) -> dict[str, list[str]]:
    """The node of each running replica, per application: of each replica actor that is
    alive (which includes one Serve has just started and that is still loading its shard)."""
    return {name: [actor.node_id for actor in replica_actors(name)] for name in names}


def open_cluster_retriever(index_dir: Path, backend, replicas: int, load_pipeline=None, **kwargs):
    """A :class:`Retriever` whose vector search goes to the shards served by ``backend``;
    the items and the query encoders stay in this process."""
    from fglab.index.atomic import MODEL_DIR
    from fglab.index.shards import sharded_modalities
    from fglab.index.store import EmbeddingIndex
    from fglab.retriever import Retriever

    index = EmbeddingIndex.load(Path(index_dir), vectors=False)  # checks every listed file
    listing = index.origin.listing
    if not listing.get("shards"):
        raise ValueError(
            f"{index_dir} is not sharded: serve it without --ray, or build it with "
            "`fglab index ... --shards N`"
        )
    parts = backend.serve_shards(Path(index_dir), listing, replicas)
    counts = {modality: index.count(modality) for modality in parts}
    index.attach_vectors(sharded_modalities(parts, index.kinds, counts))
    if load_pipeline is None:
        from fglab.pipeline import RetrievalPipeline

        load_pipeline = RetrievalPipeline.load
    return Retriever(load_pipeline(Path(index_dir) / MODEL_DIR), index, **kwargs)
