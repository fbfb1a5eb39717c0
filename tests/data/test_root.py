"""Data-root precedence: --data-root, then $FGLAB_DATA, then ../shared/data, then the cache."""

from __future__ import annotations

import pytest

from fglab.data.root import ENV_VAR, candidate_roots, resolve_data_root, resolve_dataset_dir


def test_explicit_root_wins_over_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert candidate_roots(tmp_path / "explicit") == [tmp_path / "explicit"]


def test_environment_comes_first_without_explicit_root(tmp_path, monkeypatch):
    (tmp_path / "env").mkdir()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_root() == tmp_path / "env"


def test_shared_folder_beside_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert resolve_data_root() == tmp_path / "shared" / "data"


def test_missing_explicit_root_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        resolve_data_root(tmp_path / "nowhere")


def test_unknown_dataset_lists_the_available_ones(tmp_path):
    (tmp_path / "eng-wiki").mkdir()
    with pytest.raises(FileNotFoundError, match="available: eng-wiki"):
        resolve_dataset_dir("tvgraz", tmp_path)
