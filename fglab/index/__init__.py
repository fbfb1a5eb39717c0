"""Embedding indexes over collections: faiss inner-product search plus item metadata."""

from fglab.index.atomic import IncompleteIndexError
from fglab.index.store import EmbeddingIndex, IndexSettings, Item

__all__ = [
    "EmbeddingIndex",
    "IncompleteIndexError",
    "IndexSettings",
    "Item",
]
