"""The Wikipedia-layout loader: hand-made broken fixtures and the real data sets."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest
from scipy.io import savemat

from fglab.data import load_dataset
from tests.data.fixtures import write_dataset, xml_doc


def kinds(dataset):
    return Counter(p.kind for p in dataset.problems)


@pytest.fixture
def broken_dataset(tmp_path):
    train = [
        ("t1", "i1", "1"),  # fine
        ("t2", "i2", "2"),  # malformed XML: bare & and stray markup
        ("t3", "i3", "1"),  # image missing
        ("t4", "i4", "2"),  # PNG under a .jpg name
        ("t5", "i5", "1"),  # empty text
        ("t6", "i6", "7"),  # unknown category
        ("t7", "i7", "1"),  # text file missing
        ("t8", "i8", "2"),  # image name padded with a space
        ("t9", "i9", "1"),  # not an image at all
    ]
    test = [("u1", "j1", "2"), ("u2", "j2", "1")]
    texts = {
        "t1": xml_doc("A painting by Monet."),
        "t2": '<document name="Broken"><text>Ships & <b>guns at sea</text></document>',
        "t3": xml_doc("No picture here."),
        "t4": xml_doc("A football match."),
        "t5": xml_doc("   "),
        "t6": xml_doc("Lost category."),
        "t8": xml_doc("Padded name."),
        "t9": xml_doc("Garbage image."),
        "u1": xml_doc("A tennis final."),
        "u2": xml_doc("A sculpture."),
    }
    images = {
        "i1": ("i1.jpg", "JPEG"),
        "i2": ("i2.jpg", "JPEG"),
        "i4": ("i4.jpg", "PNG"),
        "i5": ("i5.jpg", "JPEG"),
        "i6": ("i6.jpg", "JPEG"),
        "i8": ("i8 .jpg", "JPEG"),
        "i9": ("i9.jpg", "GARBAGE"),
        "j1": ("j1.jpg", "BMP"),
        "j2": ("j2.jpeg", "JPEG"),
    }
    return write_dataset(tmp_path / "broken", train, test, texts, images)


def test_broken_fixture_keeps_good_pairs_and_names_every_problem(broken_dataset, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(str(broken_dataset))
    assert dataset.train.text_ids == ["t1", "t2", "t4", "t8"]
    assert dataset.test.text_ids == ["u1", "u2"]
    assert kinds(dataset) == {
        "malformed_xml": 1,
        "missing_image": 1,
        "image_format_mismatch": 2,  # PNG and BMP under .jpg
        "empty_text": 1,
        "unknown_category": 1,
        "missing_text": 1,
        "image_name_whitespace": 1,
        "unreadable_image": 1,
    }
    assert "i3" in caplog.text and "missing_image" in caplog.text


def test_malformed_xml_still_yields_its_text(broken_dataset):
    dataset = load_dataset(str(broken_dataset))
    row = dataset.train.text_ids.index("t2")
    assert "Ships" in dataset.train.texts[row] and "guns at sea" in dataset.train.texts[row]
    assert dataset.train.titles[row] == "Broken"


def test_labels_are_zero_based_and_paths_point_at_files(broken_dataset):
    dataset = load_dataset(str(broken_dataset))
    assert dataset.train.labels.tolist() == [0, 1, 1, 1]
    assert all(path is not None and path.is_file() for path in dataset.train.image_paths)
    assert dataset.train.image_paths[3].name == "i8 .jpg"


def test_bad_lines_and_duplicates_are_skipped(tmp_path):
    train = [("a", "a", "1"), ("b", "b"), ("a", "a", "1"), ("c", "c", "x")]
    texts = {k: xml_doc(f"text {k}") for k in "abc"}
    root = write_dataset(tmp_path / "d", train, [("a", "a", "1")], texts,
                         {"a": ("a.jpg", "JPEG"), "c": ("c.jpg", "JPEG")})
    dataset = load_dataset(str(root))
    assert dataset.train.text_ids == ["a"]
    assert kinds(dataset) == {"bad_line": 1, "duplicate_pair": 1, "unknown_category": 1}


def test_chinese_wikipedia_style_txt_texts_are_detected_as_chinese(tmp_path):
    # Chinese Wikipedia ships plain-text documents in the same layout.
    train = [("1", "1", "1"), ("2", "2", "2")]
    texts = {"1": "故宫博物院收藏了大量的绘画作品。", "2": "足球比赛在体育场举行。"}
    texts["3"] = "网球决赛"
    images = {k: (f"{k}.jpg", "JPEG") for k in ("1", "2", "3")}
    root = write_dataset(tmp_path / "zhwiki", train, [("3", "3", "2")], texts, images, ".txt")
    dataset = load_dataset(str(root))
    assert dataset.language == "zh"
    assert dataset.train.texts[0].startswith("故宫")
    assert not dataset.problems


def test_tvgraz_style_features_only_dataset_aligns_shipped_rows(tmp_path):
    # A release with shipped features and no images: rows of skipped pairs must be dropped.
    train = [("a", "a", "1"), ("b", "b", "2"), ("c", "c", "1")]
    texts = {"a": xml_doc("alpha"), "c": xml_doc("gamma"), "d": xml_doc("delta")}
    root = write_dataset(tmp_path / "tvgraz", train, [("d", "d", "2")], texts)
    (root / "features").mkdir()
    savemat(root / "features" / "raw_features.mat", {
        "I_tr": np.arange(6.0).reshape(3, 2), "I_te": np.ones((1, 2)),
        "T_tr": np.arange(3.0)[:, None], "T_te": np.ones((1, 1)),
    })
    dataset = load_dataset(str(root))
    assert dataset.train.text_ids == ["a", "c"]  # "b" has no text
    np.testing.assert_array_equal(dataset.train.shipped["image:sift"], [[0, 1], [4, 5]])
    np.testing.assert_array_equal(dataset.train.shipped["text:lda"], [[0], [2]])


def test_misaligned_shipped_features_are_an_error(tmp_path):
    root = write_dataset(tmp_path / "bad", [("a", "a", "1")], [("a", "a", "1")],
                         {"a": xml_doc("alpha")})
    (root / "features").mkdir()
    matrices = {"I_tr": np.ones((2, 2)), "I_te": np.ones((1, 2))}
    savemat(root / "features" / "raw_features.mat", matrices)
    with pytest.raises(ValueError, match="image:sift features have 2 train rows"):
        load_dataset(str(root))


def test_missing_dataset_and_missing_images_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_dataset("no-such-set", tmp_path)
    root = write_dataset(tmp_path / "noimg", [("a", "a", "1")], [("a", "a", "1")],
                         {"a": xml_doc("alpha")})
    with pytest.raises(FileNotFoundError, match="neither images/ nor features"):
        load_dataset(str(root))


def test_real_eng_wiki_counts_and_quirks(eng_wiki):
    assert (len(eng_wiki.train), len(eng_wiki.test)) == (2173, 693)
    assert kinds(eng_wiki) == {"malformed_xml": 888}
    assert eng_wiki.language == "en" and len(eng_wiki.categories) == 10
    assert eng_wiki.train.shipped["image:sift"].shape == (2173, 128)
    assert eng_wiki.test.shipped["text:lda"].shape == (693, 10)
    assert min(len(t) for t in eng_wiki.train.texts + eng_wiki.test.texts) > 0


def test_real_chinese_news_counts_and_quirks(chinese_news):
    assert (len(chinese_news.train), len(chinese_news.test)) == (1696, 497)
    found = kinds(chinese_news)
    assert found["missing_image"] == 7
    assert found["image_name_whitespace"] == 3  # "22 .jpg", "444 .jpg", "1138 .jpg"
    assert found["image_format_mismatch"] == 37  # 36 PNG + 1 BMP under .jpg names
    assert chinese_news.language == "zh"
    assert all(p is not None for p in chinese_news.train.image_paths)
