"""Where a collection comes from, parsed once: a data set under the data root (or a folder)
or a manifest file. :func:`parse_source` is the one place that reads the ``manifest:PATH``
spelling of the command line; past it, code holds a typed :data:`CollectionSource`.
:func:`fglab.data.collection.load_collection` loads one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

MANIFEST_PREFIX = "manifest:"


@dataclass(frozen=True)
class DatasetSource:
    """A Wikipedia-layout data set: a name under the data root, or a folder."""

    name: str

    @property
    def label(self) -> str:
        """The display name: the data set's name, as its loaded data set is named."""
        return Path(self.name).name

    @property
    def stem(self) -> str:
        """A bare name for a results folder."""
        return self.label

    @property
    def spec(self) -> str:
        """The string :func:`parse_source` reads back into this source."""
        return self.name


@dataclass(frozen=True)
class ManifestSource:
    """A CSV or JSONL manifest file."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def label(self) -> str:
        """The display name: ``manifest:`` and the file's name."""
        return f"{MANIFEST_PREFIX}{self.path.name}"

    @property
    def stem(self) -> str:
        """A bare name for a results folder: the file's name without its suffix."""
        return self.path.stem

    @property
    def spec(self) -> str:
        """The string :func:`parse_source` reads back into this source."""
        return f"{MANIFEST_PREFIX}{self.path}"


CollectionSource: TypeAlias = DatasetSource | ManifestSource


def parse_source(spec: str) -> CollectionSource:
    """``manifest:PATH`` -> a :class:`ManifestSource` (``~`` expanded); anything else -> a
    :class:`DatasetSource`. An empty spec, or ``manifest:`` without a path, is a ValueError."""
    if not spec.strip():
        raise ValueError(
            "no collection given: name a data set (e.g. eng-wiki) or manifest:PATH (a CSV/JSONL "
            "manifest)"
        )
    if not spec.startswith(MANIFEST_PREFIX):
        return DatasetSource(spec)
    path = spec.removeprefix(MANIFEST_PREFIX)
    if not path.strip():
        raise ValueError(
            f"{spec!r} names no manifest file: give manifest:PATH, e.g. manifest:photos.csv"
        )
    return ManifestSource(Path(path).expanduser())


def as_source(source: str | CollectionSource) -> CollectionSource:
    """A typed source as is; a string (the Python API's spelling) parsed."""
    return parse_source(source) if isinstance(source, str) else source


def manifest_file(path: str | Path | ManifestSource) -> Path:
    """A manifest's file, given as a path, a :class:`ManifestSource` or a ``manifest:PATH``
    string (read as :func:`parse_source` reads it)."""
    if isinstance(path, str) and path.startswith(MANIFEST_PREFIX):
        path = parse_source(path)
    return path.path if isinstance(path, ManifestSource) else Path(path).expanduser()
