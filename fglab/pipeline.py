"""A fitted retrieval method plus what turns raw inputs into its input features, savable as a
run folder and loadable for search."""

from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np

from fglab.data.tokenize import make_tokenizer
from fglab.data.wikipedia import Split
from fglab.features.text import TfidfTextFeatures
from fglab.io import atomic_write, atomic_write_text
from fglab.method import RetrievalMethod

logger = logging.getLogger(__name__)
PIPELINE_FILE, TFIDF_FILE, METHOD_PICKLE, METHOD_DIR = (
    "pipeline.json", "text_features.joblib", "method.joblib", "method",
)


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

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Raw strings -> (n, d) embeddings (tokenized and weighted as in training)."""
        return self.method.encode_texts(self.text_inputs(texts))

    def text_inputs(self, texts: list[str]):
        if self.text_features is None:
            raise ValueError(
                f"run {self.method_name!r} on {self.dataset_name!r} uses text view "
                f"{self.text_view!r}, which cannot be computed from raw text; "
                "train with a text:tfidf method (e.g. fglab) to search by text"
            )
        tokenizer = make_tokenizer(self.language, self.stopwords)
        return self.text_features.transform([tokenizer(t) for t in texts])

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
            texts = self.encode_texts(split.texts)
        return images, texts

    def save(self, run_dir: Path) -> None:
        """``run_dir``/pipeline.json, the text features and the method, each written atomically
        (pipeline.json last, so a folder with it is complete)."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if self.text_features is not None:
            atomic_write(run_dir / TFIDF_FILE, lambda tmp: joblib.dump(self.text_features, tmp))
        if hasattr(self.method, "save") and hasattr(type(self.method), "load"):
            self.method.save(run_dir / METHOD_DIR)  # torch weights as safetensors
            storage = METHOD_DIR
        else:  # scikit-learn baselines: a pickle of the fitted estimator
            atomic_write(run_dir / METHOD_PICKLE, lambda tmp: joblib.dump(self.method, tmp))
            storage = METHOD_PICKLE
        kind = type(self.method)
        meta = {
            "dataset_name": self.dataset_name, "method_name": self.method_name,
            "image_view": self.image_view, "text_view": self.text_view,
            "language": self.language, "categories": self.categories,
            "stopwords": sorted(self.stopwords),
            "method_class": f"{kind.__module__}:{kind.__qualname__}", "method_storage": storage,
            "has_text_features": self.text_features is not None,
        }
        atomic_write_text(run_dir / PIPELINE_FILE, json.dumps(meta, indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> RetrievalPipeline:
        run_dir = Path(run_dir)
        if not (run_dir / PIPELINE_FILE).is_file():
            raise FileNotFoundError(f"no trained run in {run_dir}: {PIPELINE_FILE} is missing")
        meta = json.loads((run_dir / PIPELINE_FILE).read_text(encoding="utf-8"))
        if meta["method_storage"] == METHOD_DIR:
            module_name, class_name = meta["method_class"].split(":")
            kind = getattr(importlib.import_module(module_name), class_name)
            method = kind.load(run_dir / METHOD_DIR)
        else:
            method = joblib.load(run_dir / METHOD_PICKLE)
        text_features = joblib.load(run_dir / TFIDF_FILE) if meta["has_text_features"] else None
        return cls(
            meta["dataset_name"], meta["method_name"], meta["image_view"], meta["text_view"],
            meta["language"], meta["categories"], method, text_features, meta["stopwords"],
        )


def train_pipeline(
    dataset_name: str,
    method_name: str,
    run_dir: Path,
    seed: int = 0,
    data_root: str | None = None,
    config: dict | None = None,
    on_epoch_end=None,
) -> tuple[RetrievalPipeline, dict]:
    """Fit ``method_name`` on the training split (selection on a validation part of it),
    save the pipeline into ``run_dir`` and return it with its test scores. Methods that
    checkpoint (fglab) write ``run_dir``/checkpoints every epoch and resume from them."""
    from fglab.data.wikipedia import load_dataset
    from fglab.experiments import method_views, validation_split
    from fglab.features.views import _pretokenized, build_features
    from fglab.registry import get_method

    run_dir = Path(run_dir)
    dataset = load_dataset(dataset_name, data_root)
    image_view, text_view = method_views(dataset, method_name)
    train, _ = build_features(dataset, image_view, text_view)
    options = {"config": config} if config else {}
    method = get_method(method_name).build(seed=seed, **options)
    if hasattr(method, "checkpoint_dir"):
        method.checkpoint_dir = run_dir / "checkpoints"
        method.on_epoch_end = on_epoch_end
    if method.selects_on_validation:
        fit_rows, val_rows = validation_split(train.labels, seed)
        method.fit(train.subset(fit_rows), train.subset(val_rows))
    else:
        method.fit(train)
    text_features = None
    if text_view == "text:tfidf":
        text_features = TfidfTextFeatures(_pretokenized).fit(train.tokens)
    pipeline = RetrievalPipeline(
        dataset.name, method_name, image_view, text_view, dataset.language, dataset.categories,
        method, text_features, sorted(dataset.stopwords),
    )
    pipeline.save(run_dir)
    return pipeline, evaluate_pipeline(pipeline, run_dir, data_root, dataset)


def evaluate_pipeline(
    pipeline: RetrievalPipeline, run_dir: Path, data_root: str | None = None, dataset=None
) -> dict:
    """MAP@all and MAP@100 of both directions on the test split, from raw test inputs;
    written to ``run_dir``/metrics.json."""
    from fglab.data.wikipedia import load_dataset
    from fglab.evaluation.protocol import evaluate_similarity

    dataset = dataset or load_dataset(pipeline.dataset_name, data_root)
    images, texts = pipeline.encode_split(dataset.test)
    scores = evaluate_similarity(images @ texts.T, dataset.test.labels)
    metrics = {"dataset": dataset.name, "method": pipeline.method_name,
               "map_all": scores.map_all, "map_100": scores.map_100}
    atomic_write_text(Path(run_dir) / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
