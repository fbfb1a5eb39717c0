"""A reader sees an index as it was before a change or after it, never a mix reported as
damaged: a full rewrite swaps the whole directory, a commit replaces its listing."""

from __future__ import annotations

import numpy as np

import fglab.index.atomic as atomic
from fglab.index.store import EmbeddingIndex
from fglab.index.watch import IndexWatcher, directory_identity
from tests.index.fakes import build_fake_index


def _rewrite_during_first_hash(monkeypatch, index_dir, change) -> list[int]:
    """Patch the verifier's hashing so that ``change()`` runs just after the listing was read
    and before the first file is hashed (the window a concurrent writer can hit)."""
    real, calls = atomic.sha256_file, []

    def hash_then_change(path):
        calls.append(1)
        if len(calls) == 1:
            monkeypatch.setattr(atomic, "sha256_file", real)
            change()
        return real(path)

    monkeypatch.setattr(atomic, "sha256_file", hash_then_change)
    return calls


def test_a_full_rewrite_during_a_read_gives_the_new_index(tmp_path, monkeypatch):
    index_dir = build_fake_index(tmp_path)
    before = EmbeddingIndex.load(index_dir)

    def rewrite_without_one_item():
        index = EmbeddingIndex.load(index_dir)
        index.remove(["txt-music-1"])
        index.save(index_dir)

    _rewrite_during_first_hash(monkeypatch, index_dir, rewrite_without_one_item)
    after = EmbeddingIndex.load(index_dir)  # raised "does not match index.json" before
    assert "txt-music-1" in before and "txt-music-1" not in after
    assert len(after) == len(before) - 1


def test_a_commit_during_a_read_gives_the_new_index(tmp_path, monkeypatch):
    index_dir = build_fake_index(tmp_path)

    def commit_a_removal():
        index = EmbeddingIndex.load(index_dir, vectors=False)
        index.remove(["img-music-1"])
        index.save_changes(index_dir)

    _rewrite_during_first_hash(monkeypatch, index_dir, commit_a_removal)
    loaded = EmbeddingIndex.load(index_dir)
    assert "img-music-1" not in loaded
    hits = loaded.search(np.ones((1, 3), np.float32), "image", 50)[0]
    assert "img-music-1" not in {item.id for item, _ in hits}


def test_the_identity_changes_with_every_commit_and_rewrite(tmp_path):
    index_dir = build_fake_index(tmp_path)
    first = directory_identity(index_dir)
    index = EmbeddingIndex.load(index_dir, vectors=False)
    index.remove(["txt-music-1"])
    index.save_changes(index_dir)
    second = directory_identity(index_dir)
    EmbeddingIndex.load(index_dir).save(index_dir)
    third = directory_identity(index_dir)
    assert len({first, second, third}) == 3
    assert directory_identity(tmp_path / "missing") is None


def test_the_watcher_calls_back_once_per_change_and_retries_a_failed_load(tmp_path):
    index_dir = build_fake_index(tmp_path)
    outcomes = [RuntimeError("caught half written"), None]
    calls = []

    def on_change():
        calls.append(1)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    watcher = IndexWatcher(index_dir, on_change, interval_s=60)
    assert not watcher.check()  # nothing changed yet
    index = EmbeddingIndex.load(index_dir, vectors=False)
    index.remove(["txt-music-1"])
    index.save_changes(index_dir)
    assert not watcher.check()  # the load failed: still the old identity, tried again
    assert watcher.check() and not watcher.check()
    assert len(calls) == 2
