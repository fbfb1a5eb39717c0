"""Shared fixtures: the real data sets (skipped only where the data root is absent)."""

from __future__ import annotations

import pytest

from fglab.data.root import resolve_data_root


@pytest.fixture(scope="session")
def data_root():
    try:
        return resolve_data_root()
    except FileNotFoundError:
        pytest.skip("no data root: set $FGLAB_DATA or place the data sets in ../shared/data")


@pytest.fixture(scope="session")
def eng_wiki(data_root):
    from fglab.data import load_dataset

    if not (data_root / "eng-wiki").is_dir():
        pytest.skip(f"eng-wiki is not under {data_root}")
    return load_dataset("eng-wiki", data_root)


@pytest.fixture(scope="session")
def chinese_news(data_root):
    from fglab.data import load_dataset

    if not (data_root / "chinese-news").is_dir():
        pytest.skip(f"chinese-news is not under {data_root}")
    return load_dataset("chinese-news", data_root)


@pytest.fixture(scope="session")
def clip_folder(tmp_path_factory):
    """A tiny CLIP model folder with random weights (fglab.features.random_model)."""
    from fglab.features.random_model import build_clip_folder

    return build_clip_folder(tmp_path_factory.mktemp("models") / "clip")


@pytest.fixture(scope="session")
def chinese_clip_folder(tmp_path_factory):
    """A tiny Chinese-CLIP model folder with random weights."""
    from fglab.features.random_model import build_chinese_clip_folder

    return build_chinese_clip_folder(tmp_path_factory.mktemp("models") / "chinese-clip")


@pytest.fixture(scope="session")
def siglip_folder(tmp_path_factory):
    """A tiny SigLIP model folder with random weights."""
    from fglab.features.random_model import build_siglip_folder

    return build_siglip_folder(tmp_path_factory.mktemp("models") / "siglip")
