"""The embedding index: exact and approximate search, add/remove without rebuild, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from fglab.index.store import EmbeddingIndex, IndexSettings, Item, make_pq_index


def _items(n: int, modality: str = "image", start: int = 0) -> list[Item]:
    return [
        Item(f"{modality[:3]}-{i}", modality, str(i), category=f"c{i % 3}")
        for i in range(start, start + n)
    ]


def _vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw", "pq"])
def test_search_matches_exact_inner_product(kind):
    x = _vectors(400)
    index = EmbeddingIndex(16, IndexSettings(kind=kind, nprobe=64, ef_search=200))
    index.add(_items(400), x)
    queries = _vectors(5, seed=1)
    exact = np.argsort(-(queries @ x.T), axis=1, kind="stable")[:, :5]
    for q, row in enumerate(index.search(queries, "image", 5)):
        found = [int(item.pair_id) for item, _ in row]
        assert len(set(found) & set(exact[q].tolist())) >= 4
        scores = [s for _, s in row]
        assert scores == sorted(scores, reverse=True)
        np.testing.assert_allclose(scores[0], float(queries[q] @ x[found[0]]), rtol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw", "pq"])
def test_add_and_remove_without_rebuild_survive_save_and_load(kind, tmp_path):
    x = _vectors(300)
    index = EmbeddingIndex(16, IndexSettings(kind=kind, nprobe=64))
    index.add(_items(200), x[:200])
    index.add(_items(100, start=200), x[200:])  # a later batch, no rebuild
    target = x[250]
    assert index.search(target, "image", 1)[0][0][0].id == "ima-250"
    index.remove(["ima-250", "ima-3"])
    assert "ima-250" not in {item.id for item, _ in index.search(target, "image", 300)[0]}
    assert len(index) == 298
    index.save(tmp_path / "idx")
    loaded = EmbeddingIndex.load(tmp_path / "idx")
    assert len(loaded) == 298 and loaded.modalities["image"].kind == kind
    hits = loaded.search(target, "image", 300)[0]
    assert len(hits) == 298 and "ima-250" not in {item.id for item, _ in hits}
    loaded.add(_items(1, start=250), target[None])  # the id may come back with a new key
    assert loaded.search(target, "image", 1)[0][0][0].id == "ima-250"


def test_modalities_are_searched_separately():
    index = EmbeddingIndex(16)
    index.add(_items(10, "image"), _vectors(10))
    index.add(_items(5, "text"), _vectors(5, seed=3))
    hits = index.search(_vectors(1, seed=9), "text", 50)[0]
    assert len(hits) == 5 and {item.modality for item, _ in hits} == {"text"}
    assert index.count("image") == 10 and index.count("text") == 5


def test_auto_kind_is_exact_for_small_galleries():
    index = EmbeddingIndex(16)
    index.add(_items(50), _vectors(50))
    assert index.modalities["image"].kind == "flat"


def test_bad_inputs_name_the_problem():
    index = EmbeddingIndex(16)
    index.add(_items(3), _vectors(3))
    with pytest.raises(ValueError, match="already in the index"):
        index.add(_items(1), _vectors(1))
    with pytest.raises(ValueError, match=r"must be \(n, 16\)"):
        index.add(_items(1, start=9), np.zeros((1, 8)))
    with pytest.raises(ValueError, match="must match"):
        index.add([Item("../etc", "image", "x")], _vectors(1))
    with pytest.raises(ValueError, match="NaN"):
        index.add(_items(1, start=9), np.full((1, 16), np.nan))
    with pytest.raises(KeyError, match="no-such"):
        index.remove(["no-such"])
    with pytest.raises(ValueError, match="kind must be"):
        EmbeddingIndex(16, IndexSettings(kind="lsh")).add(_items(1), _vectors(1))


def test_too_few_items_for_pq_codes_get_exact_search(caplog):
    index = EmbeddingIndex(16, IndexSettings(kind="pq"))
    index.add(_items(50), _vectors(50))
    assert index.kinds == {"image": "flat"} and "50 items are too few" in caplog.text
    with pytest.raises(ValueError, match="pq index needs"):  # the factory itself still checks
        make_pq_index(16, 8, _vectors(50))


def test_pq_takes_an_odd_dimension_with_exact_scores(tmp_path):
    x = _vectors(300, dim=17)
    index = EmbeddingIndex(17, IndexSettings(kind="pq"))
    index.add(_items(300), x)
    index.save(tmp_path / "idx")
    loaded = EmbeddingIndex.load(tmp_path / "idx")
    hits = loaded.search(x[11], "image", 3)[0]
    assert hits[0][0].id == "ima-11"
    np.testing.assert_allclose([s for _, s in hits], [float(x[11] @ x[int(i.pair_id)])
                                                       for i, _ in hits], rtol=1e-5)


def test_auto_kind_is_ivfpq_above_the_size_limit(monkeypatch):
    import fglab.index.vectors as vectors

    monkeypatch.setattr(vectors, "AUTO_APPROXIMATE_FROM", 150)
    index = EmbeddingIndex(16)
    index.add(_items(200), _vectors(200))
    assert index.modalities["image"].kind == "ivfpq"
    assert index.search(_vectors(200)[7], "image", 1)[0][0][0].id == "ima-7"


def test_auto_kind_is_ivfpq_from_the_documented_size_on():
    from fglab.index.vectors import AUTO_APPROXIMATE_FROM, IndexSettings

    settings = IndexSettings(kind="auto")
    assert settings.resolved_kind(AUTO_APPROXIMATE_FROM - 1) == "flat"
    assert settings.resolved_kind(AUTO_APPROXIMATE_FROM) == "ivfpq"  # README: from 200k


def test_auto_kind_keeps_to_the_memory_budget():
    from fglab.index.vectors import IndexSettings

    budget = IndexSettings(max_memory=1000 * 256 * 4)  # the float32 vectors of 1,000 items
    assert budget.resolved_kind(1000, dim=256) == "flat"
    assert budget.resolved_kind(1001, dim=256) == "ivfpq"  # exact search would not fit
    with pytest.raises(ValueError, match=r"need about .* GiB of codes .* raise --max-memory"):
        budget.resolved_kind(20_000, dim=256)  # 136 bytes a code and id: over 1 MB
    assert IndexSettings().memory_budget() > 2**30  # half of any machine this runs on


def test_a_memory_size_is_read_in_units():
    import argparse

    from fglab.cli.index import memory_size

    assert memory_size("8G") == 8 * 2**30 and memory_size("500M") == 500 * 2**20
    assert memory_size("1.5GB") == int(1.5 * 2**30) and memory_size("4096") == 4096
    with pytest.raises(argparse.ArgumentTypeError, match="'lots' is not a memory size"):
        memory_size("lots")


def test_a_sharded_index_gets_pq_where_a_single_one_gets_ivfpq():
    from fglab.index.vectors import AUTO_APPROXIMATE_FROM, IndexSettings

    assert IndexSettings().resolved_kind(AUTO_APPROXIMATE_FROM, sharded=True) == "pq"
    assert IndexSettings().resolved_kind(10, sharded=True) == "flat"
    with pytest.raises(ValueError, match="not available for a sharded index"):
        IndexSettings(kind="ivfpq").resolved_kind(10, sharded=True)
