"""fglab: text<->image retrieval with fine-grained labels learned by a siamese network."""

from __future__ import annotations

__version__ = "0.1.0"
