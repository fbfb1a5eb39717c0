"""A two-node Ray cluster on loopback: distributed embedding, sharded and replicated serving.

Trains a small chinese-news run (sm), indexes its test split through Ray Data on two workers
(the CLI, two shards), serves the shards with two replicas each, takes one shard down (503,
then Serve restarts it), adds to a sharded index on the cluster, then removes a node. The head
runs Ray's dashboard: the state API that says where replicas run is served by it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from fastapi.testclient import TestClient  # noqa: E402

from fglab.cli import main  # noqa: E402
from fglab.cluster.backend import RayBackend  # noqa: E402
from fglab.cluster.serve import (  # noqa: E402
    open_cluster_retriever,
    replica_actors,
    replica_nodes,
)
from fglab.data.collection import load_collection  # noqa: E402
from fglab.index.shards import read_shard_table  # noqa: E402
from fglab.index.store import EmbeddingIndex, IndexSettings  # noqa: E402
from fglab.ingest.backend import LocalBackend  # noqa: E402
from fglab.ingest.build import add_to_sharded_index, build_index, build_sharded  # noqa: E402
from fglab.pipeline import RetrievalPipeline  # noqa: E402
from fglab.retriever import Retriever  # noqa: E402
from fglab.service import create_app  # noqa: E402

pytestmark = pytest.mark.cluster
NODE = {"num_cpus": 2, "object_store_memory": 96 * 1024**2}
QUERIES = ["球队在联赛中比赛", "经济增长和市场", "学校教育和学生", "保护生态环境", "部队官兵训练"]


@pytest.fixture(scope="module")
def cluster():
    from ray import serve
    from ray.cluster_utils import Cluster

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # else it advertises the host's IP
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": True})
    worker = cluster.add_node(**NODE)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        yield cluster, worker
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            cluster.shutdown()


@pytest.fixture(scope="module")
def run(data_root, chinese_news, tmp_path_factory) -> Path:
    if os.environ.get("FGLAB_CLUSTER_RUN"):
        return Path(os.environ["FGLAB_CLUSTER_RUN"])
    run = tmp_path_factory.mktemp("cluster-run") / "chinese-news-sm"
    argv = ["--data-root", str(data_root), "train", "chinese-news", "--method", "sm",
            "--out", str(run)]
    assert main(argv) == 0
    return run


@pytest.fixture(scope="module")
def index_dir(cluster, run, data_root, tmp_path_factory) -> Path:
    """The test split indexed through the CLI on the cluster: two workers, two shards."""
    out = tmp_path_factory.mktemp("cluster-index") / "sharded"
    argv = ["--data-root", str(data_root), "index", str(run), "--dataset", "chinese-news",
            "--out", str(out), "--kind", "flat", "--ray", cluster[0].address, "--shards", "2",
            "--workers", "2"]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def served(cluster, index_dir):
    backend = RayBackend(cluster[0].address, cpus_per_replica=0.25)
    retriever = open_cluster_retriever(index_dir, backend, replicas=2)
    try:
        yield retriever, backend
    finally:
        backend.close()


@pytest.fixture(scope="module")
def flat(index_dir) -> EmbeddingIndex:
    """One flat index over the same items and vectors as the shards."""
    index = EmbeddingIndex(10, IndexSettings(kind="flat"))
    parts = [read_shard_table(p / "embeddings.parquet")
             for p in sorted((index_dir / "shards").iterdir())]
    from fglab.index.items import Item

    rows = [(r["key"], Item(**{k: v for k, v in r.items() if k != "key"}), v)
            for table, vectors in parts for r, v in zip(table.to_pylist(), vectors, strict=True)]
    rows.sort(key=lambda row: row[0])
    index.dim = len(rows[0][2])
    for modality in ("image", "text"):
        chosen = [r for r in rows if r[1].modality == modality]
        index.add([r[1] for r in chosen], np.vstack([r[2] for r in chosen]))
    return index


def _queries(retriever) -> np.ndarray:
    return np.asarray(retriever.pipeline.encode_texts(QUERIES), dtype=np.float32)


def _assert_exact(sharded, flat, queries, k=20):
    for modality in ("image", "text"):
        for query in queries:
            ours = sharded.search(query[None], modality, k)[0]
            theirs = flat.search(query[None], modality, k)[0]
            assert [i.id for i, _ in ours] == [i.id for i, _ in theirs]
            assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-6)


def test_sharded_search_returns_exactly_the_flat_results(served, flat, index_dir):
    retriever, _ = served
    _assert_exact(retriever.index, flat, _queries(retriever))
    # the same HTTP answers as the embedded server over the same directory
    embedded = TestClient(create_app(Retriever.open(index_dir)), base_url="http://localhost")
    cluster = TestClient(create_app(retriever), base_url="http://localhost")
    for query in QUERIES[:2]:
        body = {"query": query, "k": 10, "target": "image"}
        ours, theirs = (c.post("/search/text", json=body) for c in (cluster, embedded))
        assert ours.status_code == theirs.status_code == 200
        assert [h["id"] for h in ours.json()["hits"]] == [h["id"] for h in theirs.json()["hits"]]
    assert cluster.post("/search/text", json={"query": " ", "k": 5}).json() == \
        embedded.post("/search/text", json={"query": " ", "k": 5}).json()
    assert cluster.get("/health").json() == embedded.get("/health").json()


def test_replicas_of_a_shard_sit_on_different_nodes(served):
    _, backend = served
    nodes = replica_nodes(backend.apps)
    assert len(nodes) == 2
    for placed in nodes.values():
        assert len(placed) == 2 and len(set(placed)) == 2, nodes


def test_distributed_embedding_matches_the_embedded_path(cluster, run, chinese_news, tmp_path,
                                                         monkeypatch):
    """Image features computed afresh on both sides (empty caches), the same vectors."""
    pipeline = RetrievalPipeline.load(run)
    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path / "embedded-cache"))
    reference, _ = build_index(pipeline, chinese_news, ["test"])
    backend = RayBackend(cluster[0].address, workers=2, cache_dir=str(tmp_path / "ray-cache"))
    build_sharded(backend, pipeline, chinese_news, tmp_path / "ray", 2)
    ours = EmbeddingIndex.load(tmp_path / "ray")
    assert ours.by_id == reference.by_id and reference.count("image") > 300
    vectors = {}
    for folder in sorted((tmp_path / "ray" / "shards").iterdir()):
        table, found = read_shard_table(folder / "embeddings.parquet")
        vectors.update(zip(table.column("id").to_pylist(), found, strict=True))
    for modality, prefix in (("image", "img-"), ("text", "txt-")):
        keys = [k for i, k in reference.by_id.items() if i.startswith(prefix)]
        mine = np.vstack([vectors[i] for i in reference.by_id if i.startswith(prefix)])
        theirs = reference.modalities[modality].faiss_index.reconstruct_batch(np.asarray(keys))
        assert np.allclose(mine, theirs, atol=1e-5, rtol=1e-4), modality


def _wait_for(check, timeout_s: float = 60.0, what: str = "the cluster"):
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what} did not recover within {timeout_s:g} s"
        time.sleep(1.0)
    return result


def test_a_shard_with_no_live_replica_is_a_503_until_serve_restarts_it(served, monkeypatch):
    """Both replicas of shard 0 killed: 503 with Retry-After, then answers again."""
    retriever, backend = served
    monkeypatch.setattr("fglab.cluster.serve.DEADLINE_S", 0.5)  # report the outage at once
    client = TestClient(create_app(retriever), base_url="http://localhost",
                        raise_server_exceptions=False)
    body = {"query": QUERIES[0], "k": 5, "target": "image"}
    assert client.post("/search/text", json=body).status_code == 200
    app = backend.apps[0]
    for actor in replica_actors(app):
        ray.kill(ray.get_actor(actor.name, namespace=actor.ray_namespace), no_restart=True)

    def unavailable():  # a query may still reach a replica before its kill lands
        answer = client.post("/search/text", json=body)
        return answer if answer.status_code == 503 else None

    down = _wait_for(unavailable, 20, "a 503")
    assert down.headers["retry-after"] == "2", down.headers
    assert down.json()["error"]["code"] == "shard_unavailable"
    assert "shard 0" in down.json()["error"]["message"]
    _wait_for(lambda: client.post("/search/text", json=body).status_code == 200)
    _wait_for(lambda: len(replica_nodes([app])[app]) == 2)  # both back, for the tests after


def test_index_add_on_the_cluster_writes_what_it_writes_in_process(cluster, tmp_path):
    """A text manifest built into 2 shards and added to, on the cluster and in process: the
    same listing and byte-identical shard files (the workers wrote them)."""
    from tests.index.test_shards import _manifest
    from tests.test_run_files import small_pipeline

    pipeline, first = small_pipeline(), _manifest(tmp_path / "docs.jsonl", 400)
    more = _manifest(tmp_path / "more.jsonl", 40, start=1000)
    listings = []
    for name, backend in (("local", LocalBackend()),
                          ("ray", RayBackend(cluster[0].address, workers=2))):
        out = tmp_path / name
        build_sharded(backend, pipeline, load_collection(f"manifest:{first}"), out, 2,
                      settings=IndexSettings(kind="flat"))
        add_to_sharded_index(backend, out, load_collection(f"manifest:{more}"))
        listing = json.loads((out / "index.json").read_text())
        listing["files"] = {k: v for k, v in listing["files"].items() if k.startswith("shards/")}
        listings.append(listing)
    assert listings[0] == listings[1] and listings[0]["next_key"] == 440
    assert EmbeddingIndex.load(tmp_path / "ray").count("text") == 440


def test_queries_stay_exact_after_a_node_is_removed(cluster, served, flat):
    """Last: the cluster loses its second node and with it one replica of each shard."""
    retriever, _ = served
    cluster[0].remove_node(cluster[1])
    _assert_exact(retriever.index, flat, _queries(retriever))
