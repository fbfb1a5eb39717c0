"""Building an index from a manifest or a data set with a pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fglab.data.manifest import StreamedManifest, load_manifest, stream_manifest
from fglab.index.store import EmbeddingIndex
from fglab.ingest import build
from fglab.ingest.build import build_index
from tests.index.fakes import (
    FakePipeline,
    SiftPipeline,
    fake_featurizer,
    write_collection,
)


def test_manifest_items_of_both_modalities_with_metadata(tmp_path):
    manifest = load_manifest(write_collection(tmp_path, per_category=2))
    index, skipped = build_index(FakePipeline(), manifest, featurizer=fake_featurizer)
    assert skipped == [] and index.count("image") == 6 and index.count("text") == 6
    item = index.get("img-boats-1")
    assert item.category == "boats" and item.image_path == "images/boats-1.jpg"
    assert item.source == "manifest:collection.csv" and "ship" in item.text
    assert index.info["collection_root"] == str(tmp_path.resolve())


def test_images_the_featurizer_cannot_read_are_skipped_and_reported(tmp_path):
    path = write_collection(tmp_path, per_category=2)
    image = tmp_path / "images" / "music-0.jpg"
    noise = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(image, format="JPEG")
    image.write_bytes(image.read_bytes()[:3000])  # truncated: the header still reads as JPEG
    manifest = load_manifest(path)
    index, skipped = build_index(FakePipeline(), manifest, featurizer=fake_featurizer)
    assert index.count("image") == 5 and index.count("text") == 6
    assert len(skipped) == 1 and "id music-0" in skipped[0]


def test_image_files_need_a_run_whose_image_view_reads_files(tmp_path):
    manifest = load_manifest(write_collection(tmp_path, per_category=1))
    with pytest.raises(ValueError, match="chinese-news"):
        build_index(SiftPipeline(), manifest, featurizer=fake_featurizer)


def test_adding_a_second_manifest_to_a_saved_index(tmp_path):
    first = load_manifest(write_collection(tmp_path, per_category=1))
    index, _ = build_index(FakePipeline(), first, featurizer=fake_featurizer)
    index.save(tmp_path / "index")
    (tmp_path / "more.jsonl").write_text('{"id": "extra", "text": "a guitar concert"}\n')
    loaded = EmbeddingIndex.load(tmp_path / "index")
    build_index(FakePipeline(), load_manifest(tmp_path / "more.jsonl"), index=loaded)
    assert loaded.count("text") == 4
    query = FakePipeline().encode_texts(["guitar concert"])
    assert loaded.search(query, "text", 1)[0][0][0].id == "txt-extra"


def test_eng_wiki_test_split_is_indexed_pair_by_pair(eng_wiki):
    index, skipped = build_index(FakePipeline(), eng_wiki, ["test"], featurizer=fake_featurizer)
    assert skipped == [] and index.count("image") == index.count("text") == len(eng_wiki.test)
    first = eng_wiki.test
    item = index.get(f"txt-{first.text_ids[0]}")
    assert item.category == eng_wiki.categories[first.labels[0]] and item.image_path is None
    assert item.source == "eng-wiki:test" and item.title == first.titles[0]
    hits = index.search(np.eye(3, dtype=np.float32)[:1], "image", 5)[0]
    assert {h.category for h, _ in hits} <= set(eng_wiki.categories)


def test_a_build_adds_a_block_at_a_time_and_sizes_the_index_by_the_whole(eng_wiki, monkeypatch):
    whole, _ = build_index(FakePipeline(), eng_wiki, ["test"], featurizer=fake_featurizer)
    monkeypatch.setattr("fglab.ingest.build.ADD_ROWS", 200)
    monkeypatch.setattr("fglab.index.vectors.AUTO_APPROXIMATE_FROM", 500)  # each add is less
    adds: list[tuple[str, int]] = []
    add = EmbeddingIndex.add
    monkeypatch.setattr(EmbeddingIndex, "add", lambda self, items, vectors: (
        adds.append((items[0].modality, len(items))), add(self, items, vectors))[1])
    index, _ = build_index(FakePipeline(), eng_wiki, ["test"], featurizer=fake_featurizer)
    pairs = len(eng_wiki.test)
    assert index.kinds == {"image": "ivfpq", "text": "ivfpq"}  # chosen for all 693, not 200
    assert max(n for _, n in adds) < 2 * 200 and sum(n for _, n in adds) == 2 * pairs
    firsts = {m: next(n for name, n in adds if name == m) for m in ("image", "text")}
    assert min(firsts.values()) >= 200  # the first add of each modality trains on >= a block
    assert sorted(index.by_id) == sorted(whole.by_id)
    query = FakePipeline().encode_texts(["a football match"])
    scores = [[s for _, s in found.search(query, "text", 5)[0]] for found in (index, whole)]
    assert np.allclose(*scores, atol=1e-5)  # the same vectors (ties make ids arbitrary)


def test_a_streamed_manifest_is_read_a_block_at_a_time(tmp_path, monkeypatch):
    lines = [json.dumps({"id": f"t{i}", "text": f"text number {i}"}) for i in range(10)]
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    manifest = stream_manifest(tmp_path / "m.jsonl")
    monkeypatch.setattr("fglab.ingest.build.ADD_ROWS", 4)
    read, held = [0], []
    iter_items = StreamedManifest.iter_items

    def counted(self, modality=None):
        for item in iter_items(self, modality):
            read[0] += 1
            yield item

    embed_rows = build.embed_rows
    embedded = [0]

    def watched(backend, pipeline, rows, progress=None):
        held.append(read[0] - embedded[0])  # rows read but not yet embedded
        embedded[0] += len(rows)
        return embed_rows(backend, pipeline, rows, progress)

    monkeypatch.setattr(StreamedManifest, "iter_items", counted)
    monkeypatch.setattr(build, "embed_rows", watched)
    index, skipped = build_index(FakePipeline(), manifest)
    assert skipped == [] and index.count("text") == 10
    assert held == [4, 4, 2]  # never more than a block held
    assert index.get("txt-t7").text == "text number 7"
