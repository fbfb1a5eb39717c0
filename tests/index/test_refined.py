"""The ivfpq kind: IVF fast-scan codes in memory, full vectors memory-mapped for re-ranking,
removals removed, nprobe and re-rank depth tuned to a recall target and kept in index.json."""

from __future__ import annotations

import json
import os

import faiss
import numpy as np
import pytest

from fglab.index.refined import (
    MappedRows,
    RefinedIVF,
    SpilledRows,
    VectorStore,
    flat_scan,
    layout,
    tune,
)
from fglab.index.store import EmbeddingIndex, IndexSettings, Item


def _clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim))
    x = centres[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _items(n: int, start: int = 0) -> list[Item]:
    return [Item(f"img-{i}", "image", str(i)) for i in range(start, start + n)]


def _recall(index: EmbeddingIndex, x: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    truth = faiss.knn(queries, x, k, metric=faiss.METRIC_INNER_PRODUCT)[1]
    found = index.search(queries, "image", k)
    return float(np.mean([len({int(i.pair_id) for i, _ in hits} & set(t.tolist())) / k
                          for hits, t in zip(found, truth, strict=True)]))


@pytest.fixture()
def saved(tmp_path):
    x = _clustered(6000)
    index = EmbeddingIndex(32, IndexSettings(kind="ivfpq", recall_target=0.95))
    index.add(_items(6000), x)
    index.save(tmp_path / "index")
    return tmp_path / "index", x


def test_saved_files_tuning_and_recall(saved):
    path, x = saved
    listing = json.loads((path / "index.json").read_text())
    tuning = listing["modalities"]["image"]["tuning"]
    assert tuning["reached"] and tuning["items"] == 6000
    assert 0.95 <= tuning["recall_lower_bound"] <= tuning["recall_at_10"]  # with a margin
    assert {"image.faiss", "image.vectors.npy", "image.keys.npy"} <= set(listing["files"])
    loaded = EmbeddingIndex.load(path)
    refined = loaded.modalities["image"].faiss_index
    assert isinstance(refined.store.parts[0][1], MappedRows)  # mapped rows, not loaded
    assert refined.nprobe == tuning["nprobe"] and refined.k_factor == tuning["k_factor"]
    assert _recall(loaded, x, x[:200] + 0.01) >= 0.9


def test_removals_are_removed_and_survive_a_commit(saved):
    path, x = saved
    index = EmbeddingIndex.load(path, vectors=False)
    index.remove([f"img-{i}" for i in range(0, 6000, 10)])  # 10%
    index.save_changes(path)
    loaded = EmbeddingIndex.load(path)
    assert loaded.modalities["image"].faiss_index.ntotal == 5400
    hits = loaded.search(x[:50], "image", 10)
    assert all(int(item.pair_id) % 10 for row in hits for item, _ in row)
    assert [row[0][0].id for row in hits[1:10]] == [f"img-{i}" for i in range(1, 10)]


def test_a_loaded_store_of_consecutive_keys_is_re_ranked_in_faiss_as_in_python(saved):
    path, x = saved
    refined = EmbeddingIndex.load(path).modalities["image"].faiss_index
    queries = x[:20] + 0.01
    candidates = np.tile(np.arange(300, dtype=np.int64), (20, 1))
    candidates[:, 200:] = -1  # fewer candidates than asked for: padded at the end
    candidates[5, 100:] = -1
    in_faiss = refined._rerank_mapped(queries, candidates.copy(), 10)
    in_python = refined._rerank(queries, candidates, 10)
    np.testing.assert_array_equal(in_faiss[1], in_python[1])
    np.testing.assert_allclose(in_faiss[0], in_python[0], rtol=1e-5)
    few = refined._rerank_mapped(queries[:1], candidates[:1, 195:205].copy(), 10)
    assert few[1][0, 5:].tolist() == [-1] * 5 and np.isneginf(few[0][0, 5:]).all()
    unknown = candidates.copy()
    unknown[0, 0] = 10**9  # a key it does not hold: the Python re-ranking's zeros instead
    assert refined._rerank_mapped(queries, unknown, 10) is None
    np.testing.assert_array_equal(refined.search(queries, 10)[1],
                                  refined._rerank(queries, refined.ivf.search(
                                      queries, 10 * refined.k_factor, params=faiss.
                                      SearchParametersIVF(nprobe=refined.nprobe))[1], 10)[1])


@pytest.mark.parametrize("layout", ["ivf", "flat"])
def test_items_added_after_a_removal_get_codes_that_find_them(layout, tmp_path):
    x = _isotropic(6000)
    index = RefinedIVF.trained(32, x[:5400])
    index.add_with_ids(x[:5400], np.arange(5400))
    if layout == "flat":
        index.ivf = flat_scan(index, np.arange(5400))
    removed = np.r_[np.arange(0, 5400, 10), np.arange(1, 271, 10)]  # 4,833 left: 32 x 151 + 1
    index.remove_ids(removed)  # leaves a partial block in (nearly) every list
    index.add_with_ids(x[5400:5700], np.arange(5400, 5700))
    index.nprobe = 64

    def own_codes_first(keys: np.ndarray) -> float:  # the scan of codes alone, no re-ranking
        found = index.ivf.search(x[keys], 1, params=faiss.SearchParametersIVF(nprobe=64)
                                 if layout == "ivf" else None)[1][:, 0]
        return float(np.mean(found == keys))

    assert own_codes_first(np.arange(5400, 5700)) >= 0.98
    index.store.save(tmp_path, "image")  # saved and loaded, then removed from and added to
    faiss.write_index(index.ivf, str(tmp_path / "image.faiss"))
    index = RefinedIVF.load(tmp_path, "image", 32, faiss.read_index(str(tmp_path /
                                                                       "image.faiss")), 8)
    index.remove_ids(np.arange(5401, 5700, 7))
    index.add_with_ids(x[5700:], np.arange(5700, 6000))
    assert own_codes_first(np.arange(5700, 6000)) >= 0.98
    kept = np.setdiff1d(np.arange(5400), removed)
    assert own_codes_first(kept) >= 0.98


def test_added_items_are_found_after_a_commit_and_a_reload(saved):
    path, _ = saved
    extra = _clustered(50, seed=5)
    index = EmbeddingIndex.load(path, vectors=False)
    index.add(_items(50, start=6000), extra)
    index.save_changes(path)
    loaded = EmbeddingIndex.load(path)
    assert [row[0][0].id for row in loaded.search(extra[:5], "image", 1)] == [
        f"img-{i}" for i in range(6000, 6005)]
    loaded.save(path)  # a full rewrite keeps the tuning of about the same size
    assert json.loads((path / "index.json").read_text())["modalities"]["image"]["tuning"]


def test_an_odd_dimension_is_padded_for_the_codes():
    x = _clustered(3000, dim=33)
    index = EmbeddingIndex(33, IndexSettings(kind="ivfpq"))
    index.add(_items(3000), x)
    assert tune(index.modalities["image"].faiss_index, 0.95)["reached"]
    assert _recall(index, x, x[:200] + 0.01) >= 0.9


def test_the_store_spills_to_disk_and_reads_every_part(monkeypatch, tmp_path):
    import fglab.index.refined as refined

    monkeypatch.setattr(refined, "SPILL_BYTES", 4 * 8 * 100)  # 100 rows of 8-d
    store = VectorStore(8, spill_dir=str(tmp_path))
    rows = np.arange(8 * 450, dtype=np.float32).reshape(450, 8)
    for start in range(0, 450, 50):
        store.append(np.arange(start, start + 50) * 3, rows[start : start + 50])
    assert len(store.parts) == 4 and isinstance(store.parts[0][1], SpilledRows)
    np.testing.assert_array_equal(store.get(np.array([3 * 449, 0, 7, 3 * 120])),
                                  np.vstack([rows[449], rows[0], np.zeros(8), rows[120]]))
    store.save(tmp_path, "x")
    again = VectorStore.load(tmp_path, "x", 8)
    np.testing.assert_array_equal(again.get(np.arange(450) * 3), rows)


def test_tuning_reports_an_unreachable_target():
    x = _clustered(2000)
    index = RefinedIVF.trained(32, x)
    index.add_with_ids(x, np.arange(2000))
    result = tune(index, target=1.01)
    assert not result["reached"] and 0.9 <= result["recall_at_10"] <= 1.0
    assert (index.nprobe, index.k_factor) == (result["nprobe"], result["k_factor"])


def test_a_served_index_reads_its_vectors_file_into_the_os_cache_within_a_budget(
        saved, monkeypatch):
    path, _ = saved
    index = EmbeddingIndex.load(path)
    size = (path / "image.vectors.npy").stat().st_size
    assert index.prefetch(budget=size - 1) == []  # over the budget: left to the disk
    read: list[int] = []
    pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: (read.append(n), pread(fd, n, at))[1])
    assert index.prefetch(budget=size) == ["image"]
    assert sum(read) == size  # every byte once, by position (nothing mapped)
    assert index.search(index.modalities["image"].faiss_index.store.get(
        np.array([3]))[0], "image", 1)[0][0][0].id == "img-3"


def _isotropic(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _tunings(monkeypatch) -> list[dict]:
    import fglab.index.refined as refined

    seen, depths = [], refined._tune_depths
    monkeypatch.setattr(refined, "_tune_depths", lambda *a: (seen.append(depths(*a)), seen[-1])[1])
    return seen


def test_a_flat_scan_of_half_codes_is_tried_only_where_the_lists_prune_little(monkeypatch):
    seen = _tunings(monkeypatch)
    clustered = RefinedIVF.trained(32, _clustered(6000))
    clustered.add_with_ids(_clustered(6000), np.arange(6000))
    tune(clustered, 0.95)
    assert [t["layout"] for t in seen] == ["IVF64,PQ32x4fs"]  # a few lists of 64 suffice
    seen.clear()
    isotropic = RefinedIVF.trained(32, _isotropic(6000))
    isotropic.add_with_ids(_isotropic(6000), np.arange(6000))
    result = tune(isotropic, 0.95)
    assert [t["layout"] for t in seen] == ["IVF64,PQ32x4fs", "IDMap,PQ16x4fs"]
    assert seen[0]["nprobe"] >= 16 and result["reached"]
    assert result["layout"] == layout(isotropic.ivf)


def test_the_faster_layout_is_kept_saved_and_searched_with_removals(monkeypatch, tmp_path):
    import fglab.index.refined as refined

    depths = refined._tune_depths

    def flat_scan_faster(index, *args):
        found = depths(index, *args)
        return {**found, "ms_per_query": 0.001 if refined.lists(index.ivf) == 1 else 1.0}

    monkeypatch.setattr(refined, "_tune_depths", flat_scan_faster)
    x = _isotropic(6000)
    index = EmbeddingIndex(32, IndexSettings(kind="ivfpq"))
    index.add(_items(6000), x)
    index.remove([f"img-{i}" for i in range(0, 6000, 10)])  # before the tuning: not re-added
    index.save(tmp_path / "index")
    tuning = json.loads((tmp_path / "index" / "index.json").read_text()
                        )["modalities"]["image"]["tuning"]
    assert tuning["layout"] == "IDMap,PQ16x4fs" and tuning["instead_of"]["layout"] == \
        "IVF64,PQ32x4fs" and tuning["nprobe"] == 1
    loaded = EmbeddingIndex.load(tmp_path / "index")
    refined_index = loaded.modalities["image"].faiss_index
    assert isinstance(refined_index.ivf, faiss.IndexIDMap) and refined_index.ntotal == 5400
    hits = loaded.search(x[:50], "image", 10)
    assert all(int(item.pair_id) % 10 for row in hits for item, _ in row)
    assert [row[0][0].id for row in hits[1:10]] == [f"img-{i}" for i in range(1, 10)]
    kept = x.copy()
    kept[::10] = 0  # the removed rows are never among the exact neighbours either
    assert _recall(loaded, kept, x[1:200:2] + 0.001) >= 0.9

    # the flat layout keeps each id with its codes through later removals and additions
    index = EmbeddingIndex.load(tmp_path / "index", vectors=False)
    index.remove([f"img-{i}" for i in range(1, 6000, 10)])
    extra = _isotropic(50, seed=5)
    index.add(_items(50, start=6000), extra)
    index.save_changes(tmp_path / "index")
    again = EmbeddingIndex.load(tmp_path / "index")
    assert again.modalities["image"].faiss_index.ntotal == 4850
    hits = again.search(x[:50], "image", 10)
    assert all(int(item.pair_id) % 10 > 1 or int(item.pair_id) >= 6000
               for row in hits for item, _ in row)
    assert [row[0][0].id for row in hits[2:10]] == [f"img-{i}" for i in range(2, 10)]
    assert [row[0][0].id for row in again.search(extra[:5], "image", 1)] == [
        f"img-{i}" for i in range(6000, 6005)]


def test_a_store_of_consecutive_keys_finds_rows_without_a_binary_search(tmp_path, monkeypatch):
    rows = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    store = VectorStore(8)
    store.append(np.arange(1000, 1500), rows)
    store.save(tmp_path, "x")
    loaded = VectorStore.load(tmp_path, "x", 8)
    searchsorted = np.searchsorted
    calls: list[int] = []
    monkeypatch.setattr(np, "searchsorted", lambda *a, **k: (calls.append(1),
                                                             searchsorted(*a, **k))[1])
    wanted = np.array([1499, 1000, 999, 1500, 1250, -3])
    expected = np.vstack([rows[499], rows[0], np.zeros(8), np.zeros(8), rows[250], np.zeros(8)])
    np.testing.assert_array_equal(loaded.get(wanted), expected)
    assert not calls
    codes = faiss.index_factory(8, "IDMap,PQ4x4fs", faiss.METRIC_INNER_PRODUCT)
    codes.train(rows)
    codes.add_with_ids(rows, np.arange(1000, 1500))
    shifted = RefinedIVF(codes, loaded, k_factor=4)  # keys from 1000: rows shifted by 1000
    ranked = shifted._rerank_mapped(rows[:5], codes.search(rows[:5], 40)[1], 3)
    np.testing.assert_array_equal(ranked[1], shifted._rerank(rows[:5], codes.search(
        rows[:5], 40)[1], 3)[1])
    assert ((ranked[1] >= 1000) & (ranked[1] < 1500)).all()
    gaps = VectorStore(8)  # the same span of keys with a gap and a repeat: a binary search
    gaps.append(np.r_[np.arange(1000, 1100), np.arange(1101, 1500), [1499]], rows)
    gaps.save(tmp_path, "gaps")
    loaded = VectorStore.load(tmp_path, "gaps", 8)
    assert loaded.parts[0][1].first_key is None
    np.testing.assert_array_equal(loaded.get(np.array([1100, 1101, 1000])),
                                  np.vstack([np.zeros(8), rows[100], rows[0]]))
    assert calls


def _file_rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("RssFile:"))
    return int(line.split()[1]) / 1024


def test_a_served_store_unmaps_what_its_lookups_mapped_within_a_bound(tmp_path, monkeypatch):
    rows = np.random.default_rng(0).standard_normal((60_000, 256)).astype(np.float32)
    store = VectorStore(256)
    store.append(np.arange(60_000), rows)
    store.save(tmp_path, "x")  # 61 MB
    monkeypatch.setattr(MappedRows, "RELEASE_BYTES", 8 * 1024 * 1024)
    served = VectorStore.load(tmp_path, "x", 256)
    before = _file_rss_mb()
    rng = np.random.default_rng(1)
    for _ in range(400):  # 8,000 rows at random: most of the file were nothing released
        keys = np.sort(rng.choice(60_000, 20, replace=False))
        np.testing.assert_array_equal(served.get(keys), rows[keys])
    assert _file_rss_mb() - before < 12
