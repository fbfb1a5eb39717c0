"""Collection sources: ``NAME`` or ``manifest:PATH`` parsed once into a typed source, and the
one loader that dispatches on it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fglab.data.collection import load_collection, load_training_collection, manifest_path
from fglab.data.dataset import CrossModalDataset
from fglab.data.manifest import Manifest, load_manifest
from fglab.data.sources import (
    DatasetSource,
    ManifestSource,
    as_source,
    manifest_file,
    parse_source,
)
from tests.data.fixtures import write_dataset, write_manifest_collection, xml_doc


def test_a_name_or_a_folder_is_a_data_set_named_as_its_loaded_data_set():
    assert parse_source("eng-wiki") == DatasetSource("eng-wiki")
    source = parse_source("/data/sets/eng-wiki")
    assert source == DatasetSource("/data/sets/eng-wiki")
    assert source.label == source.stem == "eng-wiki"
    assert source.spec == "/data/sets/eng-wiki"


def test_manifest_prefix_gives_a_manifest_source_with_the_file_name_as_label():
    source = parse_source("manifest:/photos/collection.jsonl")
    assert source == ManifestSource(Path("/photos/collection.jsonl"))
    assert source.label == "manifest:collection.jsonl"
    assert source.stem == "collection"
    assert parse_source(source.spec) == source


def test_a_manifest_path_expands_the_home_folder():
    source = parse_source("manifest:~/m.csv")
    assert isinstance(source, ManifestSource)
    assert source.path == Path("~/m.csv").expanduser()


@pytest.mark.parametrize(
    ("spec", "message"),
    [("", "no collection given"), ("  ", "no collection given"),
     ("manifest:", "names no manifest file"), ("manifest:  ", "names no manifest file")],
)
def test_an_empty_spec_or_a_manifest_without_a_path_is_a_clear_error(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_source(spec)


def test_as_source_parses_strings_and_keeps_typed_sources():
    typed = ManifestSource("m.csv")  # a str path is made a Path
    assert typed.path == Path("m.csv")
    assert as_source(typed) is typed
    assert as_source("manifest:m.csv") == typed
    assert as_source("eng-wiki") == DatasetSource("eng-wiki")


def test_manifest_file_reads_a_path_a_source_or_a_spec(tmp_path):
    path = tmp_path / "m.csv"
    assert manifest_file(path) == manifest_file(str(path)) == path
    assert manifest_file(ManifestSource(path)) == manifest_file(f"manifest:{path}") == path


def _tiny_dataset(root: Path) -> Path:
    rows = [("t1", "i1", "1"), ("t2", "i2", "2")]
    texts = {"t1": xml_doc("A painting."), "t2": xml_doc("A match."), "u1": xml_doc("A goal.")}
    images = {"i1": ("i1.jpg", "JPEG"), "i2": ("i2.jpg", "JPEG"), "j1": ("j1.jpg", "JPEG")}
    return write_dataset(root / "tiny", rows, [("u1", "j1", "2")], texts, images)


def test_load_collection_gives_a_manifest_as_read_or_a_data_set(tmp_path):
    path = write_manifest_collection(tmp_path / "m")
    manifest = load_collection(ManifestSource(path))
    assert isinstance(manifest, Manifest) and len(manifest.items) == 24
    assert load_collection(f"manifest:{path}").items == manifest.items
    folder = _tiny_dataset(tmp_path)
    dataset = load_collection(DatasetSource(str(folder)))
    assert isinstance(dataset, CrossModalDataset) and dataset.name == "tiny"
    assert dataset.train.text_ids == ["t1", "t2"]


def test_load_collection_can_leave_a_data_sets_problems_unlogged(tmp_path, caplog):
    folder = _tiny_dataset(tmp_path)
    (folder / "texts" / "t2.xml").unlink()
    with caplog.at_level(logging.WARNING):
        quiet = load_collection(DatasetSource(str(folder)), log_problems_found=False)
    assert [p.kind for p in quiet.problems] == ["missing_text"]
    assert "missing_text" not in caplog.text
    with caplog.at_level(logging.WARNING):
        load_collection(DatasetSource(str(folder)))
    assert "missing_text" in caplog.text


def test_training_collection_from_a_typed_source_matches_the_string(tmp_path):
    path = write_manifest_collection(tmp_path)
    typed = load_training_collection(ManifestSource(path))
    spelled = load_training_collection(f"manifest:{path}")
    assert typed.name == spelled.name == f"manifest:{path.resolve()}"
    assert typed.test.text_ids == spelled.test.text_ids
    assert manifest_path(typed) == path.resolve()
    folder = _tiny_dataset(tmp_path)
    dataset = load_training_collection(DatasetSource(str(folder)))
    assert dataset.name == "tiny" and manifest_path(dataset) is None


def test_load_manifest_takes_a_source_and_still_reads_the_spec(tmp_path):
    path = write_manifest_collection(tmp_path)
    items = load_manifest(path).items
    assert load_manifest(ManifestSource(path)).items == items
    assert load_manifest(f"manifest:{path}").items == items
