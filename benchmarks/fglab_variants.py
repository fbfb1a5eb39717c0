"""fglab design choices compared on validation only: image branch, embedding, teacher, labels.

Each variant is fglab's default config with a few options overridden. For every seed the
training split is divided as ``fglab reproduce`` divides it (a stratified validation fifth),
the model is trained on the fitting part, and the score is the validation average MAP@all of
the epoch the training chose (the number that picks the epoch; the test split is never
read); an ensemble's further networks train for that many epochs on the fitting part and the
score is that of their mean. The refit on all training pairs does not change that number, so
it is switched off here to save time. Teacher quality is the teacher's text->text MAP on
validation. With ``--pairs`` every pair is its own class (pair-level training, categories
ignored): the validation MAP is then the mean reciprocal rank of the exact partner, and the
validation Recall@10 of the exact partner is shown too.

    python benchmarks/fglab_variants.py eng-wiki --seeds 0,1 [--variants a,b] [--pairs]
        [--image-view VIEW] [--text-view VIEW] [--lr LR] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fglab.config import FGLabConfig
from fglab.data.collection import pair_labels
from fglab.data.root import resolve_data_root
from fglab.data.splits import validation_split
from fglab.data.wikipedia import load_dataset
from fglab.evaluation.protocol import evaluate_method
from fglab.features.views import build_features, default_image_view
from fglab.hardware import set_fit_threads
from fglab.io import atomic_write_text
from fglab.training.fglab_method import FGLabMethod

UNIFORM = {"labels": {"mode": "uniform"}}


def _no_graph(
    image_branch: str, embedding: str, about: str, input_dropout: float | None = None
) -> tuple[dict, str]:
    """A variant without the word graph and with uniform labels: the image side alone
    (``input_dropout`` None: the config's default)."""
    model = {"text_branch": "mlp", "image_branch": image_branch, "embedding": embedding}
    if input_dropout is not None:
        model["image_input_dropout"] = input_dropout
    return {"model": model, **UNIFORM}, f"no graph; {about}"


#: name -> (config overrides, what it tests)
VARIANTS: dict[str, tuple[dict, str]] = {
    "mlp-paper-image": _no_graph(
        "mlp",
        "unit",
        "image MLP on standardized features, unit embeddings (the earlier design)",
        input_dropout=0.0,
    ),
    "mlp-input-dropout": _no_graph("mlp", "unit", "image MLP, dropout 0.2 on its input"),
    "mlp-kernel-unit": _no_graph("kernel", "unit", "RBF kernel image branch, unit embeddings"),
    "mlp-kernel-bounded": _no_graph(
        "kernel", "bounded", "RBF kernel image branch, bounded embeddings"
    ),
    "mlp-image-mlp-bounded": _no_graph("mlp", "bounded", "image MLP, bounded embeddings"),
    "ensemble3": ({"training": {"ensemble": 3}}, "as siamese, the mean score of 3 networks"),
    "uniform": (UNIFORM, "graph branch, default image side, all labels equal (fglab-uniform)"),
    "siamese": ({}, "siamese teacher trained on the texts it grades, continuous (fglab)"),
    "no-classifier": (
        {"training": {"class_weight": 0.0}},
        "as siamese, without the shared classifier and its semantic term (the earlier design)",
    ),
    "uniform-no-classifier": (
        {**UNIFORM, "training": {"class_weight": 0.0}},
        "all labels equal, without the shared classifier (the earlier fglab-uniform)",
    ),
    "class-weight0.3": (
        {"training": {"class_weight": 0.3}}, "as siamese, classifier loss weight 0.3 (default 1)"
    ),
    "landmarks-all": (
        {"model": {"image_kernel_landmarks": 100_000}},
        "as siamese, every training image a kernel landmark (default 1,000)",
    ),
    "dropout0.2": ({"model": {"dropout": 0.2}}, "as siamese, dropout 0.2 (default 0.4)"),
    "dropout0.6": ({"model": {"dropout": 0.6}}, "as siamese, dropout 0.6 (default 0.4)"),
    "decay1e-4": (
        {"training": {"weight_decay": 1e-4}}, "as siamese, weight decay 1e-4 (default 1e-3)"
    ),
    "decay1e-2": (
        {"training": {"weight_decay": 1e-2}}, "as siamese, weight decay 1e-2 (default 1e-3)"
    ),
    "class-weight3": (
        {"training": {"class_weight": 3.0}}, "as siamese, classifier loss weight 3 (default 1)"
    ),
    "siamese-binned": ({"labels": {"mode": "binned"}}, "as siamese, 9 levels 0.1 ... 0.9"),
    "crossfit2-binned": (
        {"labels": {"teacher_folds": 2, "mode": "binned"}},
        "cross-fitted, 9 levels 0.1 ... 0.9",
    ),
    "siamese-strength3": ({"labels": {"strength": 3.0}}, "as siamese, weights 1 + 3 x hardness"),
    "crossfit2": ({"labels": {"teacher_folds": 2}}, "two cross-fitted siamese networks"),
    "crossfit2-strength3": (
        {"labels": {"teacher_folds": 2, "strength": 3.0}},
        "cross-fitted, weights 1 + 3 x hardness",
    ),
    "sentence": ({"labels": {"teacher": "sentence"}}, "pretrained sentence-embedding teacher"),
    "tfidf": ({"labels": {"teacher": "tfidf"}}, "tf-idf cosine teacher (no model, no training)"),
    "bernoulli-float32": (
        {"model": {"score_dropout": "bernoulli"}, "training": {"precision": "float32"}},
        "as siamese, a Bernoulli mask per pair and dimension, float32 (the earlier training)",
    ),
    "lr6e-4": ({"training": {"lr": 6e-4}}, "as siamese, learning rate 6e-4 (default 3e-4)"),
    "lr1e-3": ({"training": {"lr": 1e-3}}, "as siamese, learning rate 1e-3 (default 3e-4)"),
    "gaussian-float32": (
        {"training": {"precision": "float32"}},
        "as siamese, Gaussian score dropout, float32 products",
    ),
    "sentence-strength3": (
        {"labels": {"teacher": "sentence", "strength": 3.0}},
        "sentence teacher, weights 1 + 3 x hardness",
    ),
    "contrastive-uniform": (
        {"training": {"loss": "contrastive"}, **UNIFORM},
        "all labels equal, InfoNCE at temperature 0.1",
    ),
    "contrastive-sentence": (
        {"training": {"loss": "contrastive"}, "labels": {"teacher": "sentence"}},
        "sentence teacher, InfoNCE at temperature 0.1",
    ),
    "contrastive-uniform-t05": (
        {"training": {"loss": "contrastive", "temperature": 0.05}, **UNIFORM},
        "all labels equal, InfoNCE at temperature 0.05",
    ),
    "contrastive-sentence-t05": (
        {"training": {"loss": "contrastive", "temperature": 0.05},
         "labels": {"teacher": "sentence"}},
        "sentence teacher, InfoNCE at temperature 0.05",
    ),
    "batch512": (
        {"training": {"batch_size": 512}, **UNIFORM},
        "all labels equal, batches of 512 pairs (default 128)",
    ),
    "batch64": (
        {"training": {"batch_size": 64}, **UNIFORM},
        "all labels equal, batches of 64 pairs (default 128)",
    ),
    "sentence-batch64": (
        {"training": {"batch_size": 64}, "labels": {"teacher": "sentence"}},
        "sentence teacher, batches of 64 pairs (default 128)",
    ),
    "sentence-lr6e-4": (
        {"training": {"lr": 6e-4}, "labels": {"teacher": "sentence"}},
        "sentence teacher, learning rate 6e-4 (default 3e-4)",
    ),
    "sentence-lr1e-3": (
        {"training": {"lr": 1e-3}, "labels": {"teacher": "sentence"}},
        "sentence teacher, learning rate 1e-3 (default 3e-4)",
    ),
    "uniform-lr6e-4": (
        {"training": {"lr": 6e-4}, **UNIFORM},
        "all labels equal, learning rate 6e-4 (default 3e-4)",
    ),
    "sentence-dropout0.2": (
        {"model": {"dropout": 0.2}, "labels": {"teacher": "sentence"}},
        "sentence teacher, score dropout 0.2 (default 0.4)",
    ),
    "contrastive-batch512": (
        {"training": {"loss": "contrastive", "batch_size": 512}, **UNIFORM},
        "all labels equal, InfoNCE over batches of 512 pairs",
    ),
    "sentence-binned": (
        {"labels": {"teacher": "sentence", "mode": "binned"}},
        "sentence teacher, 9 levels 0.1 ... 0.9",
    ),
    # pair level (the exact item): losses that rank, the labels as weights or soft targets
    "contrastive-tfidf": (
        {"training": {"loss": "contrastive"}, "labels": {"teacher": "tfidf"}},
        "tf-idf teacher weighting InfoNCE at temperature 0.1",
    ),
    "hardest-uniform": (
        {"training": {"loss": "hardest", "margin": 0.2}, **UNIFORM},
        "all labels equal, VSE++ hardest-negative hinge, margin 0.2",
    ),
    "hardest-tfidf": (
        {"training": {"loss": "hardest", "margin": 0.2}, "labels": {"teacher": "tfidf"}},
        "tf-idf teacher scaling the negatives of the hardest-negative hinge, margin 0.2",
    ),
    "soft-tfidf": (
        {"training": {"loss": "soft-contrastive"}, "labels": {"teacher": "tfidf"}},
        "InfoNCE with soft targets: half the positive, half softmax(tf-idf cosine / 0.1)",
    ),
    "soft-tfidf-mix0.2": (
        {"training": {"loss": "soft-contrastive", "soft_mix": 0.2},
         "labels": {"teacher": "tfidf"}},
        "InfoNCE with soft targets, a fifth from the tf-idf teacher",
    ),
    "soft-sentence": (
        {"training": {"loss": "soft-contrastive"}, "labels": {"teacher": "sentence"}},
        "InfoNCE with soft targets from the sentence-embedding teacher",
    ),
}


def _merge(base: dict, overrides: dict) -> dict:
    merged = {key: dict(value) for key, value in base.items()}
    for section, values in overrides.items():
        merged.setdefault(section, {}).update(values)
    return merged


def run_variant(name: str, train, seeds: list[int], lr: float = 3e-4) -> dict:
    # one network unless the variant is about ensembles, learning rate ``lr`` unless it is
    # about that: the variants compare design choices against one fixed base
    base = {"training": {"refit": False, "ensemble": 1, "lr": lr}}
    overrides = _merge(base, VARIANTS[name][0])
    runs = []
    for seed in seeds:
        config = FGLabConfig.from_dict(overrides)
        config.seed = seed
        fit_rows, val_rows = validation_split(train.labels, seed)
        start = time.perf_counter()
        validation = train.subset(val_rows)
        method = FGLabMethod(config).fit(train.subset(fit_rows), validation)
        stage = method.stages_["model"]
        scores = evaluate_method(method, validation)
        runs.append(
            {
                "seed": seed,
                # the whole method (an ensemble: all its networks); the first network alone
                "validation_map": scores.map_all["avg"],
                "validation_recall10": {d: r["10"] for d, r in scores.recall.items()},
                "first_network_map": stage.best_score,
                "epoch": stage.best_epoch + 1,
                "semantic_weight": method.config.model.semantic_weight,
                "teacher_map": getattr(method, "siamese_map_", None),
                "seconds": time.perf_counter() - start,
            }
        )
    scores = [run["validation_map"] for run in runs]
    return {"variant": name, "about": VARIANTS[name][1], "mean": float(np.mean(scores)),
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--pairs", action="store_true", help="each pair its own class")
    parser.add_argument("--image-view", default=None, help="default: the data set's")
    parser.add_argument("--text-view", default="text:tfidf",
                        help="text:tfidf (default) or text:tfidf+e5 / text:tfidf+minilm")
    parser.add_argument("--lr", type=float, default=3e-4,
                        help="the base learning rate of every variant (default 3e-4; the "
                             "pair-level default of fglab is 6e-4)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    dataset = load_dataset(args.dataset, resolve_data_root(args.data_root))
    image_view = args.image_view or default_image_view(dataset)
    train, _ = build_features(dataset, image_view, args.text_view)
    if args.pairs:
        train = train.with_labels(pair_labels(len(train)))
    set_fit_threads()  # torch's thread count: fit leaves it to its caller
    results = []
    level = " (pair level: MAP = MRR of the exact partner)" if args.pairs else ""
    print(f"{args.dataset} ({image_view}, {args.text_view}, lr {args.lr:g}): validation avg "
          f"MAP@all{level}, seeds {args.seeds}")
    print("| variant | " + " | ".join(f"seed {s}" for s in seeds)
          + " | mean | R@10 img→txt / txt→img | teacher MAP |")
    print("|---" * (len(seeds) + 4) + "|")
    for name in names:
        result = run_variant(name, train, seeds, args.lr)
        results.append(result)
        teacher = [r["teacher_map"] for r in result["runs"] if r["teacher_map"] is not None]
        cells = " | ".join(f"{r['validation_map']:.4f}" for r in result["runs"])
        teacher_cell = f"{np.mean(teacher):.3f}" if teacher else "–"
        recall = " / ".join(
            f"{np.mean([r['validation_recall10'][d] for r in result['runs']]):.3f}"
            for d in ("img2txt", "txt2img")
        )
        print(f"| {name} | {cells} | {result['mean']:.4f} | {recall} | {teacher_cell} |",
              flush=True)
        if args.out is not None:
            atomic_write_text(args.out, json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
