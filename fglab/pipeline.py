"""A fitted retrieval method plus what turns raw inputs into its input features, savable as a
run folder and loadable for search."""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fglab.data.dataset import Split
from fglab.data.sources import CollectionSource, ManifestSource, as_source
from fglab.data.tokenize import make_tokenizer
from fglab.features.model_folder import (
    current_folder,
    use_recorded_folder,
    uses_model_folder,
)
from fglab.features.text import TfidfTextFeatures
from fglab.integrity import DamagedFileError, check_files, list_files, refuse_pickles
from fglab.io import atomic_write_text, replace_folders
from fglab.method import RetrievalMethod, check_trains_on_pairs, fit_method

logger = logging.getLogger(__name__)
PIPELINE_FILE, TFIDF_DIR, METHOD_DIR = "pipeline.json", "text_features", "method"
RUN_FORMAT, RUN_FORMAT_VERSION = "fglab-run", 2
#: Files of runs before format 2, pickles: deleted when a run is saved over one, refused on load.
OLD_PICKLES = ("text_features.joblib", "method.joblib")
#: ``module:Class`` names outside fglab that a run may name as its method (comma-separated),
#: e.g. a benchmark's stand-in model; fglab's own methods need no listing.
TRUSTED_METHODS_ENV = "FGLAB_TRUSTED_METHODS"
RETRAIN = "train the run again with this fglab version (`fglab train`)"


@dataclass
class RetrievalPipeline:
    """A fitted RetrievalMethod plus what turns raw inputs into its input features."""

    dataset_name: str
    method_name: str
    image_view: str
    text_view: str
    language: str
    categories: list[str]
    method: RetrievalMethod
    text_features: TfidfTextFeatures | None = None  # for text:tfidf; None for shipped views
    stopwords: list[str] = field(default_factory=list)
    pairs: bool = False  # trained at pair level: categories ignored, each pair its own class
    test_ids: list[str] | None = None  # a manifest's test pairs, as split when training
    # the pretrained model folder its views read (image:clip, text:clip): path and SHA-256
    model_folder: dict | None = None
    # the last single query's (text, rows): a served query's note reads what its search read
    _last_query: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Raw strings -> (n, d) embeddings (tokenized and weighted as in training)."""
        return self.method.encode_texts(self.text_inputs(texts))

    def text_inputs(self, texts: list[str], stored: bool = False):
        """The text view's rows of raw ``texts``; ``stored``: sentence embeddings go through
        the feature store (a split's texts; a query's are not kept)."""
        if len(texts) != 1 or stored:
            return self._text_inputs(texts, stored)
        last = self._last_query  # one read: another thread may replace it meanwhile
        if last is None or last[0] != texts[0]:
            last = (texts[0], self._text_inputs(texts, stored))
            self._last_query = last
        return last[1]

    def _text_inputs(self, texts: list[str], stored: bool):
        from fglab.features.views import SENTENCE_TEXT_VIEWS

        if self.text_features is None and self.text_view in SENTENCE_TEXT_VIEWS:
            from fglab.features.sentence import embed_texts, text_encoder

            if stored:
                return embed_texts(texts, self.text_view)
            return np.asarray(text_encoder(self.text_view)(texts), dtype=np.float32)
        if self.text_features is None:
            raise ValueError(
                f"run {self.method_name!r} on {self.dataset_name!r} uses text view "
                f"{self.text_view!r}, which cannot be computed from raw text; "
                "train with a text:tfidf method (e.g. fglab) to search by text"
            )
        from fglab.features.views import text_rows

        tokenizer = make_tokenizer(self.language, self.stopwords)
        return text_rows(self.text_features, [tokenizer(t) for t in texts], texts,
                         self.text_view)

    def ignores_text(self, text: str) -> bool:
        """Whether the model reads nothing of ``text``: a word view without one known word
        (a sentence embedding reads any text, and so does a shipped view's own encoder)."""
        if self.text_features is None or "+" in self.text_view:
            return False
        rows = self.text_inputs([text])
        return (rows.nnz if hasattr(rows, "nnz") else np.count_nonzero(rows)) == 0

    def encode_image_features(self, features: np.ndarray) -> np.ndarray:
        """Rows of the run's image view -> (n, d) embeddings."""
        return self.method.encode_images(np.asarray(features))

    def split_image_features(self, split: Split) -> np.ndarray:
        if self.image_view in split.shipped:
            return split.shipped[self.image_view]
        from fglab.features.image_views import extract_image_view

        return extract_image_view(split, self.image_view)

    def encode_split(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """(image embeddings, text embeddings) of a split, features as the run's views say."""
        images = self.encode_image_features(self.split_image_features(split))
        if self.text_features is None and self.text_view in split.shipped:
            texts = self.method.encode_texts(split.shipped[self.text_view])
        else:
            texts = self.method.encode_texts(self.text_inputs(split.texts, stored=True))
        return images, texts

    def save(self, run_dir: Path) -> None:
        """``run_dir``/text_features/ and method/ (arrays, safetensors and JSON), then
        pipeline.json with the size and SHA-256 of each of their files (written last: a
        folder whose pipeline.json matches its files is complete). The new folders are written
        beside the old ones and swapped in: a save that fails leaves the old run whole."""
        run_dir = Path(run_dir)
        writers = {METHOD_DIR: self.method.save}
        if self.text_features is not None:
            writers = {TFIDF_DIR: self.text_features.save, **writers}
        stale = [folder for folder in (TFIDF_DIR, METHOD_DIR) if folder not in writers]

        def write_listing() -> None:
            meta = self._listing(list_files(run_dir, list(writers)))
            atomic_write_text(run_dir / PIPELINE_FILE, json.dumps(meta, indent=2))

        replace_folders(run_dir, writers, stale, write_listing)
        for name in OLD_PICKLES:
            (run_dir / name).unlink(missing_ok=True)

    def _listing(self, files: dict) -> dict:
        kind = type(self.method)
        return {
            "format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION,
            "dataset_name": self.dataset_name, "method_name": self.method_name,
            "image_view": self.image_view, "text_view": self.text_view,
            "language": self.language, "categories": self.categories,
            "stopwords": sorted(self.stopwords),
            "method_class": f"{kind.__module__}:{kind.__qualname__}",
            "has_text_features": self.text_features is not None,
            "pairs": self.pairs, "test_ids": self.test_ids,
            "model_folder": self.model_folder,
            "files": files,
        }

    @classmethod
    def load(cls, run_dir: Path) -> RetrievalPipeline:
        """A run saved by :meth:`save`, its files checked against pipeline.json first; a run
        with a pickle in it is refused."""
        run_dir = Path(run_dir)
        meta = _checked_listing(run_dir)
        # the model folder first: a moved or changed one is a one-line error before any work
        model_folder = use_recorded_folder(meta.get("model_folder"))
        method = _method_class(meta["method_class"]).load(run_dir / METHOD_DIR)
        text_features = None
        if meta["has_text_features"]:
            from fglab.features.views import _pretokenized

            text_features = TfidfTextFeatures.load(run_dir / TFIDF_DIR, _pretokenized)
        return cls(
            meta["dataset_name"], meta["method_name"], meta["image_view"], meta["text_view"],
            meta["language"], meta["categories"], method, text_features, meta["stopwords"],
            bool(meta.get("pairs", False)), meta.get("test_ids"),
            model_folder.record() if model_folder else None,
        )


def _checked_listing(run_dir: Path) -> dict:
    """pipeline.json of a run without pickles whose model files all match it."""
    if not (run_dir / PIPELINE_FILE).is_file():
        raise FileNotFoundError(f"no trained run in {run_dir}: {PIPELINE_FILE} is missing")
    refuse_pickles(run_dir, "run", RETRAIN)
    try:
        meta = json.loads((run_dir / PIPELINE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        message = f"{run_dir / PIPELINE_FILE} is unreadable ({error}); {RETRAIN}"
        raise ValueError(message) from error
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise ValueError(f"{run_dir} was saved by an older fglab (pickles); {RETRAIN}")
    if meta.get("format_version") != RUN_FORMAT_VERSION:
        raise ValueError(
            f"{run_dir} is a run of format version {meta.get('format_version')!r}; this "
            f"fglab reads version {RUN_FORMAT_VERSION}: {RETRAIN}"
        )
    if not isinstance(meta.get("files"), dict):
        raise ValueError(f"{run_dir / PIPELINE_FILE} lists no files; {RETRAIN}")
    check_files(run_dir, meta["files"], PIPELINE_FILE, RETRAIN)
    folders = [TFIDF_DIR, METHOD_DIR] if meta.get("has_text_features") else [METHOD_DIR]
    unlisted = sorted(set(list_files(run_dir, folders, checksums=False)) - set(meta["files"]))
    if unlisted:
        raise DamagedFileError(
            f"{run_dir / unlisted[0]} is not listed in {PIPELINE_FILE} (added after the run "
            f"was saved); {RETRAIN}"
        )
    return meta


def _method_class(name: str) -> type[RetrievalMethod]:
    """The method class a run names: one of fglab's registry, or one listed in
    $FGLAB_TRUSTED_METHODS (a run's files never decide which other code is imported)."""
    name = str(name)
    registered = _registered_classes()
    if name in registered:
        return registered[name]
    trusted = {n.strip() for n in os.environ.get(TRUSTED_METHODS_ENV, "").split(",") if n.strip()}
    if name not in trusted:
        raise ValueError(
            f"the run names method class {name!r}, which is not one of fglab's; list it in "
            f"${TRUSTED_METHODS_ENV} to load it"
        )
    module_name, _, class_name = name.partition(":")
    try:
        kind = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"the run names method class {name!r}, which is unknown") from error
    if not (isinstance(kind, type) and issubclass(kind, RetrievalMethod) and hasattr(kind, "load")):
        raise ValueError(f"the run names {name!r}, which is not a savable retrieval method")
    return kind


@functools.cache
def _registered_classes() -> dict[str, type[RetrievalMethod]]:
    """The classes of the registry's methods (built unfitted, which is cheap), by the
    ``module:Class`` name pipeline.json gives them."""
    from fglab.registry import get_method, method_names

    kinds = {type(get_method(name).build(seed=0)) for name in method_names()}
    return {f"{kind.__module__}:{kind.__qualname__}": kind for kind in kinds}


def train_pipeline(
    collection: str | CollectionSource,
    method_name: str,
    run_dir: Path,
    seed: int = 0,
    data_root: str | None = None,
    config: dict | None = None,
    on_epoch_end=None,
    pairs: bool = False,
    image_view: str | None = None,
    text_view: str | None = None,
    fit_check: bool = True,
    model_path: str | Path | None = None,
) -> tuple[RetrievalPipeline, dict]:
    """Fit ``method_name`` on the training split of a data set or manifest (a typed source,
    or a string that :func:`fglab.data.sources.parse_source` reads; selection on a validation
    part of it), save the pipeline into ``run_dir`` and return it with its test scores.
    ``pairs`` (implied by a manifest without labels): each pair is its own class. Views: the
    named ones, else :func:`fglab.features.views.default_views` (as ``fglab reproduce``).
    Methods that checkpoint (fglab) write ``run_dir``/checkpoints every epoch and resume from
    them.
    ``fit_check``: refuse (JobTooLarge) before any feature is computed where the estimated
    memory exceeds what this machine has free. ``model_path``: a pretrained model folder
    (CLIP, Chinese-CLIP, SigLIP), whose towers become the default views (``image:clip``,
    ``text:clip``) and, for the fglab methods, the teacher; the run records it."""
    from fglab.data.collection import is_labeled, load_training_collection
    from fglab.features.views import build_features, choose_views, image_view_dim
    from fglab.registry import get_method, pretrained_config
    from fglab.training.fit_check import check_fit, estimate_fit

    source, run_dir = as_source(collection), Path(run_dir)
    if model_path is not None:  # a bad folder is one line before any work
        from fglab.features.pretrained import use_model

        use_model(model_path)
    on_text_tower = model_path is not None and (text_view is None or uses_model_folder(text_view))
    config = pretrained_config(method_name, config) if on_text_tower else config
    options = {"config": config} if config else {}
    method = get_method(method_name).build(seed=seed, **options)  # a bad config fails first
    dataset = load_training_collection(source, data_root, seed, pairs=pairs)
    pairs = pairs or not is_labeled(dataset)
    if pairs:  # before any features are built
        check_trains_on_pairs(method, method_name)
    image_view, text_view = choose_views(
        dataset, method_name, method.text_input, method.fixed_views, pairs, image_view,
        text_view, model_path is not None,
    )
    texts = dataset.train.texts + dataset.test.texts
    estimate = estimate_fit(len(texts), image_view_dim(dataset, image_view), sum(map(len, texts)))
    logger.info("training on %s", estimate.describe())
    if fit_check:
        check_fit(estimate)
    train, _ = build_features(dataset, image_view, text_view)
    if hasattr(method, "checkpoint_dir"):
        method.checkpoint_dir = run_dir / "checkpoints"
        method.on_epoch_end = on_epoch_end
    fit_method(method, train, seed, pairs)
    test_ids = list(dataset.test.text_ids) if isinstance(source, ManifestSource) else None
    folder = current_folder().record() if uses_model_folder(image_view, text_view) else None
    pipeline = RetrievalPipeline(
        dataset.name, method_name, image_view, text_view, dataset.language, dataset.categories,
        method, train.text_featurizer, sorted(dataset.stopwords), pairs, test_ids, folder,
    )
    pipeline.save(run_dir)
    return pipeline, evaluate_pipeline(pipeline, run_dir, data_root, dataset)


def evaluate_pipeline(
    pipeline: RetrievalPipeline, run_dir: Path, data_root: str | None = None, dataset=None
) -> dict:
    """The exact pair's Recall@1/5/10 and median rank, both directions, and with categories
    MAP@all and MAP@100 (category relevance), on the test split from raw test inputs;
    written to ``run_dir``/metrics.json."""
    from fglab.data.collection import is_labeled, load_training_collection
    from fglab.evaluation.protocol import evaluate_embeddings

    dataset = dataset or load_training_collection(
        pipeline.dataset_name, data_root, test_ids=pipeline.test_ids, pairs=pipeline.pairs
    )
    images, texts = pipeline.encode_split(dataset.test)
    scores = evaluate_embeddings(images, texts, dataset.test.labels)
    metrics: dict = {"dataset": dataset.name, "method": pipeline.method_name,
                     "pairs": pipeline.pairs, "n_test": len(dataset.test)}
    if is_labeled(dataset):
        metrics |= {"map_all": scores.map_all, "map_100": scores.map_100}
    metrics |= {"recall": scores.recall, "median_rank": scores.median_rank}
    atomic_write_text(Path(run_dir) / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
