"""Featurizing many inputs of one view into the feature store, as reader -> embedder -> writer.

- the reader (:func:`plan`) keys every input by content (an image file's bytes, a text's
  UTF-8 bytes) and keeps the distinct keys the store does not hold yet, as jobs
  (``{"key", "value"}``: the file path or the text);
- the embedder (:class:`Featurizer`) turns a batch of jobs into vectors with one model,
  loaded on first use; where it runs is the engine's business (:func:`local_engine` in this
  process, :func:`fglab.cluster.features.ray_engine` on Ray Data workers);
- the writer (:func:`featurize`) puts each finished batch into the store in this process, so
  a killed run keeps the shards written so far and the next run computes only the rest.

Image views are ``image:efficientnet-lite0/1/2``, text views ``text:e5``, ``text:minilm`` and
``text:use``; ``image:clip`` and ``text:clip`` read the model folder made current with
:func:`fglab.features.model_folder.use_model_folder` (a Ray worker is given the folder and
makes it current there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fglab.features.cache import file_digest, text_digest
from fglab.features.image_views import IMAGE_VIEWS, PRETRAINED_IMAGE_VIEW, image_extractor
from fglab.features.model_folder import use_model_folder
from fglab.features.sentence import TEXT_VIEWS, text_store_spec
from fglab.features.store import FeatureStore, open_store

logger = logging.getLogger(__name__)

FEATURE_VIEWS = (*IMAGE_VIEWS, PRETRAINED_IMAGE_VIEW, *TEXT_VIEWS)
BATCH = 64
#: ``engine(view, jobs, progress)`` -> batches ``{"key", "vector", "error"}`` in any order.
Engine = Callable[[str, list[dict], Callable[[int], None] | None], Iterable[dict]]


def view_kind(view: str) -> str:
    """``"image"`` or ``"text"``; a ValueError naming the known views for anything else."""
    if view in IMAGE_VIEWS or view == PRETRAINED_IMAGE_VIEW:
        return "image"
    if view in TEXT_VIEWS:
        return "text"
    raise ValueError(f"unknown feature view {view!r}; known: {', '.join(FEATURE_VIEWS)}")


def stored_parts(view: str) -> list[str]:
    """The stored views a (possibly joined) view is made of: ``image:A+B`` -> [image:A,
    image:B], ``text:tfidf+e5`` -> [text:e5] (tf-idf is fitted per run, not stored)."""
    from fglab.features.views import WORDS_AND_SENTENCE_VIEWS

    if view in WORDS_AND_SENTENCE_VIEWS:
        return [WORDS_AND_SENTENCE_VIEWS[view]]
    if view.startswith("image:") and "+" in view:
        from fglab.features.image_views import image_view_parts

        return image_view_parts(view)
    view_kind(view)  # an unknown view fails here, naming the known ones
    return [view]


def view_store(view: str, root: Path | None = None) -> tuple[FeatureStore, int]:
    """The store of a view (under ``root``, default ``$FGLAB_CACHE/features``) and its dim."""
    if view_kind(view) == "image":
        extractor = image_extractor(view)
        return open_store(extractor.cache_name, root), extractor.dim
    name, dim = text_store_spec(view)
    return open_store(name, root), dim


@dataclass
class Featurized:
    """What a featurization did: inputs, how many were computed, failures by input row."""

    total: int
    dim: int
    computed: int = 0
    failures: dict[int, str] = field(default_factory=dict)


def plan(view: str, inputs: list, store: FeatureStore, dim: int
         ) -> tuple[list[dict], list[str | None], dict[int, str]]:
    """(jobs for the distinct keys not in the store, the key of each input or None, and
    {row: reason} for inputs that cannot be keyed, e.g. a missing file)."""
    keys: list[str | None] = []
    failures: dict[int, str] = {}
    image = view_kind(view) == "image"
    for row, value in enumerate(inputs):
        try:
            keys.append(file_digest(Path(value)) if image else text_digest(str(value)))
        except (OSError, TypeError) as error:
            keys.append(None)
            failures[row] = f"missing file {value}" if value is None else f"unreadable: {error}"
    first: dict[str, int] = {}
    for row, key in enumerate(keys):
        if key is not None:
            first.setdefault(key, row)
    missing = store.missing(list(first), dim)
    jobs = [{"key": key, "value": str(inputs[first[key]])} for key in missing]
    return jobs, keys, failures


class Featurizer:
    """Batch of jobs (``key``, ``value`` columns) -> ``{"key", "vector", "error"}``, with one
    model of ``view`` per instance: a Ray Data actor, or this process. ``model_folder``: the
    folder of a pretrained view, made current where the instance runs (a Ray worker), its
    weights checked against ``model_sha256``."""

    def __init__(self, view: str, num_workers: int = 0, model_folder: str | None = None,
                 model_sha256: str | None = None):
        if model_folder is not None:
            use_model_folder(model_folder, model_sha256)
        self.view = view
        self.kind = view_kind(view)
        self.num_workers = num_workers  # image decoding processes (0: in this one)
        self._model = None

    def __call__(self, batch: dict) -> dict:
        keys = [str(k) for k in batch["key"]]
        values = [str(v) for v in batch["value"]]
        errors = [""] * len(keys)
        if self.kind == "image":
            from fglab.features.image import extract, load_model
            from fglab.features.image_views import model_loader

            extractor = image_extractor(self.view)
            if self._model is None:
                self._model = (model_loader(self.view) or (lambda: load_model(extractor)))()
            vectors, failed = extract([Path(v) for v in values], extractor, model=self._model,
                                      num_workers=self.num_workers)
            for row, reason in failed.items():
                errors[row] = reason
        else:
            from fglab.features.sentence import text_encoder

            vectors = np.asarray(text_encoder(self.view)(values), dtype=np.float32)
        return {"key": np.asarray(keys, dtype=object), "vector": vectors.astype(np.float32),
                "error": np.asarray(errors, dtype=object)}


def local_engine(view: str, jobs: list[dict], progress: Callable[[int], None] | None = None,
                 batch: int = 256, num_workers: int = 2) -> Iterator[dict]:
    """:class:`Featurizer` in this process, ``batch`` jobs at a time (images decoded by
    ``num_workers`` DataLoader processes)."""
    featurizer = Featurizer(view, num_workers)
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        out = featurizer({c: [job[c] for job in chunk] for c in ("key", "value")})
        if progress:
            progress(len(chunk))
        yield out


def featurize(view: str, inputs: list, root: Path | None = None, engine: Engine | None = None,
              progress: Callable[[int], None] | None = None,
              on_plan: Callable[[int], None] | None = None) -> Featurized:
    """Every input of ``view`` into the store under ``root``: inputs already there are
    skipped, the rest computed by ``engine`` (default: this process) and written as each
    batch comes back. ``on_plan`` is called with the number of jobs (distinct inputs not in
    the store), ``progress`` with the number of jobs each batch finished."""
    store, dim = view_store(view, root)
    jobs, keys, failures = plan(view, inputs, store, dim)
    if on_plan:
        on_plan(len(jobs))
    engine = engine or local_engine
    errors: dict[str, str] = {}
    computed = 0
    try:
        for batch in engine(view, jobs, progress):
            good = [i for i, e in enumerate(batch["error"]) if not e]
            errors.update({str(batch["key"][i]): str(e) for i, e in enumerate(batch["error"])
                           if e})
            store.put_many([str(batch["key"][i]) for i in good],
                           [batch["vector"][i] for i in good])
            computed += len(good)
    finally:
        store.flush()
    for row, key in enumerate(keys):
        if key in errors:
            failures[row] = errors[key]
    return Featurized(len(inputs), dim, computed, dict(sorted(failures.items())))
