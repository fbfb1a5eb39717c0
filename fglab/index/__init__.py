"""Embedding indexes over collections: faiss inner-product search plus item metadata."""

from fglab.index.atomic import IncompleteIndexError
from fglab.index.manifest import Manifest, ManifestItem, ManifestProblem, load_manifest
from fglab.index.store import EmbeddingIndex, IndexSettings, Item

__all__ = [
    "EmbeddingIndex",
    "IncompleteIndexError",
    "IndexSettings",
    "Item",
    "Manifest",
    "ManifestItem",
    "ManifestProblem",
    "load_manifest",
]
