"""The retriever: ranked hits for text and image queries, and every check on what callers send."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fglab.index.store import Item
from fglab.retriever import (
    InvalidQueryError,
    ItemNotFoundError,
    Limits,
    NotAnImageError,
    QueryTooLargeError,
    Retriever,
    UnavailableError,
    UnreadableImageError,
)
from tests.index.fakes import (
    COLOURS,
    FakePipeline,
    SiftPipeline,
    build_fake_index,
    fake_upload_featurizer,
    open_fake_retriever,
)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return build_fake_index(tmp_path_factory.mktemp("retriever"))


@pytest.fixture()
def retriever(index_dir):
    return open_fake_retriever(index_dir)


def _jpeg(colour=COLOURS["boats"], size=(64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG")
    return out.getvalue()


def test_text_query_finds_images_of_its_category(retriever):
    hits = retriever.search_text("a naval ship under sail", k=4)
    assert [h.category for h in hits] == ["boats"] * 4
    assert [h.rank for h in hits] == [1, 2, 3, 4] and all(h.modality == "image" for h in hits)
    assert hits[0].score >= hits[-1].score and hits[0].has_image
    assert hits[0].id.startswith("img-boats-")


def test_image_query_finds_texts_of_its_category(retriever, tmp_path):
    hits = retriever.search_image(_jpeg(COLOURS["music"]), k=3)
    assert [h.category for h in hits] == ["music"] * 3 and hits[0].modality == "text"
    path = tmp_path / "q.jpg"
    path.write_bytes(_jpeg(COLOURS["animals"]))
    assert retriever.search_image(path, k=1)[0].category == "animals"


def test_k_larger_than_the_gallery_returns_the_whole_gallery(retriever):
    assert len(retriever.search_text("piano", k=100)) == 12
    assert len(retriever.search_text("piano", k=5, target="text")) == 5


@pytest.mark.parametrize("k", [0, -3, 101, 10**12, 2.5, "10", True, None])
def test_k_out_of_range_or_not_an_integer_is_refused(retriever, k):
    with pytest.raises(InvalidQueryError, match="k must be"):
        retriever.search_text("ship", k=k)


@pytest.mark.parametrize("query", ["", "   ", "\n\t "])
def test_empty_query_is_refused(retriever, query):
    with pytest.raises(InvalidQueryError, match="empty"):
        retriever.search_text(query)


def test_huge_query_and_bad_target_are_refused(retriever):
    with pytest.raises(QueryTooLargeError, match="1000000 characters"):
        retriever.search_text("a" * 1_000_000)
    with pytest.raises(InvalidQueryError, match="target"):
        retriever.search_text("ship", target="video")
    with pytest.raises(InvalidQueryError, match="string"):
        retriever.search_text(["ship"])


def test_non_image_truncated_and_empty_uploads_are_refused(retriever):
    with pytest.raises(NotAnImageError, match="not an image"):
        retriever.search_image(b"%PDF-1.4 definitely not a picture")
    with pytest.raises(UnreadableImageError, match="truncated"):
        retriever.search_image(_jpeg(size=(256, 256))[:400])
    with pytest.raises(InvalidQueryError, match="empty"):
        retriever.search_image(b"")


def test_decompression_bomb_is_refused_before_decoding(retriever):
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, format="PNG")  # ~20 KB, 144 megapixels
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(QueryTooLargeError, match="pixels"):
        retriever.search_image(bomb.getvalue())


def test_upload_over_the_byte_limit_is_refused(index_dir):
    small = open_fake_retriever(index_dir, limits=Limits(max_image_bytes=1000))
    with pytest.raises(QueryTooLargeError, match="at most 1000"):
        small.search_image(_jpeg(size=(300, 300)))


def test_image_search_needs_a_run_that_reads_image_files(index_dir):
    from fglab.index.store import EmbeddingIndex

    index = EmbeddingIndex.load(index_dir)
    sift = Retriever(SiftPipeline(), index, featurizer=fake_upload_featurizer)
    with pytest.raises(UnavailableError, match="image:sift"):
        sift.search_image(_jpeg())
    assert sift.health()["image_search"] is False


def test_items_and_thumbnails_by_id(retriever):
    item = retriever.item("txt-music-1")
    assert item.category == "music" and "piano" in item.text
    thumb = Image.open(io.BytesIO(retriever.thumbnail("img-music-1")))
    assert thumb.format == "JPEG" and max(thumb.size) <= 320


@pytest.mark.parametrize("item_id", ["../etc/passwd", "..", "%2e%2e", "a/b", "", "x" * 300])
def test_malformed_item_ids_are_refused(retriever, item_id):
    with pytest.raises(InvalidQueryError, match="not a valid id"):
        retriever.item(item_id)
    with pytest.raises(InvalidQueryError):
        retriever.thumbnail(item_id)


def test_unknown_items_and_files_outside_the_collection_are_not_found(retriever, tmp_path):
    with pytest.raises(ItemNotFoundError, match="no item"):
        retriever.item("img-unknown")
    tampered = Item("img-evil", "image", "evil", image_path="../../../../../../etc/passwd")
    retriever.index.add([tampered], np.ones((1, 3), np.float32))  # a tampered index entry
    with pytest.raises(ItemNotFoundError, match="no image file"):
        retriever.thumbnail("img-evil")


def test_health_counts_items_and_capabilities(retriever):
    health = retriever.health()
    assert health["items"] == {"image": 12, "text": 12} and health["image_search"] is True
    assert health["method"] == FakePipeline.method_name


def test_limit_threads_applies_to_the_thread_that_searches(retriever):
    import threading

    import faiss

    retriever.limit_threads(1)
    seen = []

    def query():
        retriever.search_text("ship", k=2)
        seen.append(faiss.omp_get_max_threads())  # OpenMP's setting is per thread

    worker = threading.Thread(target=query)
    worker.start()
    worker.join()
    assert seen == [1] and retriever.threads == 1


def test_images_between_the_pixel_limit_and_pillows_bomb_limit_are_too_large(index_dir):
    retriever = open_fake_retriever(index_dir, limits=Limits(max_image_pixels=1_000_000))
    image = io.BytesIO()
    Image.new("1", (1_500, 1_000)).save(image, format="PNG")  # over ours, far below Pillow's
    with pytest.raises(QueryTooLargeError, match="1500 x 1000 pixels"):
        retriever.check_image(image.getvalue())


def test_text_queries_do_not_wait_behind_the_image_model(index_dir):
    import threading

    started, release = threading.Event(), threading.Event()

    def slow_featurizer(data: bytes, view: str):  # a CNN that takes its time
        started.set()
        release.wait(10)
        return fake_upload_featurizer(data, view)

    retriever = Retriever.open(index_dir, FakePipeline.load, featurizer=slow_featurizer)
    upload = threading.Thread(target=retriever.search_image, args=(_jpeg(),))
    upload.start()
    try:
        assert started.wait(10)
        text = threading.Thread(target=retriever.search_text, args=("a ship",))
        text.start()
        text.join(5)
        assert not text.is_alive(), "the text query waited for the image model"
    finally:
        release.set()
        upload.join(10)


def test_an_item_without_an_image_is_not_blamed_on_eng_wiki(retriever):
    plain = Item("img-plain", "image", "plain", image_path=None)
    retriever.index.add([plain], np.ones((1, 3), np.float32))
    with pytest.raises(ItemNotFoundError, match="has no image file") as raised:
        retriever.thumbnail("img-plain")
    assert "eng-wiki" not in str(raised.value) and "SIFT" not in str(raised.value)


def test_a_query_without_a_known_word_gets_a_note(retriever):
    assert retriever.query_note("ship in the harbour") is None
    assert "known to the model" in retriever.query_note("\U0001f642 ?!")


def test_warm_up_runs_a_text_and_an_image_query_before_the_first_user(retriever, monkeypatch):
    calls = []
    pipeline = retriever.pipeline
    real_texts, real_images = pipeline.encode_texts, pipeline.encode_image_features
    monkeypatch.setattr(pipeline, "encode_texts", lambda t: calls.append("text") or real_texts(t))
    monkeypatch.setattr(pipeline, "encode_image_features",
                        lambda f: calls.append("image") or real_images(f))
    retriever.warm_up()
    assert calls == ["text", "image"]


def test_nprobe_can_be_set_at_search_time():
    from fglab.index.store import EmbeddingIndex, IndexSettings
    from fglab.retriever import Retriever

    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3)).astype(np.float32)
    index = EmbeddingIndex(3, IndexSettings(kind="ivfpq", nlist=8))
    index.add([Item(f"img-{i}", "image", str(i)) for i in range(400)], x)
    retriever = Retriever(FakePipeline(), index)
    retriever.set_nprobe(1)
    assert index.modalities["image"].faiss_index.nprobe == 1
    with pytest.raises(ValueError, match="at least 1"):
        retriever.set_nprobe(0)
