"""``fglab features manifest:PATH --ray ADDRESS`` on a two-node loopback cluster: the same
vectors in the same store as in process, and a rerun that computes nothing."""

from __future__ import annotations

import os

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from fglab.cli import main  # noqa: E402
from fglab.data.manifest import load_manifest  # noqa: E402
from fglab.features.cache import file_digest, text_digest  # noqa: E402
from fglab.features.featurize import view_store  # noqa: E402
from fglab.features.store import FeatureStore  # noqa: E402
from tests.data.fixtures import write_manifest_collection  # noqa: E402

pytestmark = pytest.mark.cluster
NODE = {"num_cpus": 2, "object_store_memory": 96 * 1024**2}


@pytest.fixture(scope="module")
def address():
    from ray.cluster_utils import Cluster

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # else it advertises the host's IP
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    cluster.add_node(**NODE)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.parametrize("view", ["image:efficientnet-lite0", "text:e5"])
def test_features_on_ray_match_in_process(address, view, tmp_path, capsys):
    _same_on_ray_as_in_process(address, view, tmp_path, capsys, [])


@pytest.mark.parametrize("view", ["image:clip", "text:clip"])
def test_a_model_folders_views_on_ray_match_in_process(address, view, clip_folder, tmp_path,
                                                       capsys):
    """Each worker loads the folder from the same path and checks its weights."""
    _same_on_ray_as_in_process(address, view, tmp_path, capsys,
                               ["--model-path", str(clip_folder)])


def _same_on_ray_as_in_process(address, view, tmp_path, capsys, extra: list[str]) -> None:
    manifest = write_manifest_collection(tmp_path / "collection", per_topic=6)
    items = load_manifest(manifest).items
    if view.startswith("image:"):
        keys = [file_digest(m.image_path) for m in items]
    else:
        keys = [text_digest(m.text) for m in items]
    common = ["features", f"manifest:{manifest}", "--view", view, *extra, "--cache-dir"]
    assert main([*common, str(tmp_path / "local")]) == 0
    ray_argv = [*common, str(tmp_path / "ray"), "--ray", address, "--workers", "2"]
    assert main(ray_argv) == 0
    out = capsys.readouterr().out
    assert "18 computed" in out and "0 failed" in out
    store, dim = view_store(view, tmp_path / "local")
    local = FeatureStore(store.extractor, tmp_path / "local").get_many(keys, dim)
    remote = FeatureStore(store.extractor, tmp_path / "ray").get_many(keys, dim)
    assert all(v is not None for v in local + remote)
    np.testing.assert_allclose(np.vstack(remote), np.vstack(local), atol=1e-5, rtol=1e-4)
    assert main(ray_argv) == 0  # everything is in the store: nothing goes to the cluster
    assert "0 computed" in capsys.readouterr().out
