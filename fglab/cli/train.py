"""``fglab train NAME --method M --out RUN`` and ``fglab evaluate RUN``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from fglab.data.problems import printable
from fglab.data.sources import parse_source
from fglab.hardware import set_threads
from fglab.pipeline import RetrievalPipeline, evaluate_pipeline, train_pipeline
from fglab.registry import method_names

PAIRS_HELP = (
    "train at pair level: ignore the categories, each pair's only match is its own partner "
    "(implied by a manifest without labels)"
)


def add_view_arguments(parser: argparse.ArgumentParser, whom: str) -> None:
    """``--text-view`` and ``--image-view``, giving ``whom`` (e.g. "every method") a view."""
    parser.add_argument(
        "--text-view", default=None,
        help=f"give {whom} this text view (default text:tfidf; e.g. text:lda, the literature's "
        "view of eng-wiki, for the methods that take any view)",
    )
    parser.add_argument(
        "--image-view", default=None,
        help=f"give {whom} this image view (default: the data set's, image:sift or "
        "image:efficientnet-lite0)",
    )


MODEL_PATH_HELP = (
    "a pretrained image-text model folder in the Hugging Face layout (config.json, "
    "model.safetensors, preprocessor_config.json, tokenizer files) of a CLIP, Chinese-CLIP or "
    "SigLIP model; read offline, never downloaded; its towers are the views image:clip and "
    "text:clip (the defaults with this option)"
)


def add_model_path_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-path", type=Path, default=None, metavar="DIR",
                        help=MODEL_PATH_HELP)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch's thread count for the command's fits (set before any work)."""
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch threads for training (default: one per idle core, at most 2; "
        "OMP_NUM_THREADS or MKL_NUM_THREADS, where set, is kept)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train one method and save it as a run")
    parser.add_argument(
        "name", help="data set name (e.g. eng-wiki) or manifest:PATH (a CSV/JSONL manifest)"
    )
    parser.add_argument("--method", default="fglab", help=f"one of: {', '.join(method_names())}")
    parser.add_argument("--out", type=Path, required=True, help="run folder (resumed if present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--config", type=Path, default=None,
        help="JSON file with the method's options (fglab: as a run's method/config.json; "
        "cca, pls: n_components; sm, scm, sm-svm: c); an option it does not have is an error",
    )
    parser.add_argument("--pairs", action="store_true", help=PAIRS_HELP)
    parser.add_argument(
        "--skip-fit-check", action="store_true",
        help="train even where the memory estimate says the job does not fit this machine",
    )
    add_view_arguments(parser, "the method")
    add_model_path_argument(parser)
    add_threads_argument(parser)
    parser.set_defaults(func=run_train)
    evaluate = subparsers.add_parser("evaluate", help="evaluate a saved run on its test split")
    evaluate.add_argument("run", type=Path, help="run folder written by fglab train")
    evaluate.add_argument(
        "--json", action="store_true", help="print the metrics as one JSON object"
    )
    evaluate.set_defaults(func=run_evaluate)


def _print_metrics(metrics: dict) -> None:
    level = ", trained at pair level" if metrics.get("pairs") else ""
    dataset = printable(metrics["dataset"], None)  # a collection's name: its path, escaped
    print(f"{metrics['method']} on {dataset} (test split, {metrics['n_test']} pairs{level})")
    for name in ("map_all", "map_100") if "map_all" in metrics else ():
        values = metrics[name]
        print(
            f"  {name}: img->txt {values['img2txt']:.4f}  txt->img {values['txt2img']:.4f}  "
            f"avg {values['avg']:.4f}"
        )
    print("  exact pair (the item's own partner):")
    for direction, arrow in (("img2txt", "img->txt"), ("txt2img", "txt->img")):
        recall = "  ".join(f"R@{k} {r:.3f}" for k, r in metrics["recall"][direction].items())
        print(f"    {arrow}: {recall}  median rank {metrics['median_rank'][direction]:g}")


def run_train(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    # The loop logs resumption as a warning; show the epoch progress as well.
    logging.getLogger("fglab.training").setLevel(logging.INFO)
    logging.getLogger("fglab.pipeline").setLevel(logging.INFO)  # the job's size estimate
    source = parse_source(args.name)
    config = json.loads(args.config.read_text(encoding="utf-8")) if args.config else None
    if (args.out / "checkpoints").is_dir():
        print(f"found checkpoints in {args.out / 'checkpoints'}: resuming where they stop")
    with logging_redirect_tqdm():  # log lines above the stage's progress bar
        pipeline, metrics = train_pipeline(
            source, args.method, args.out, args.seed, args.data_root, config,
            pairs=args.pairs, image_view=args.image_view, text_view=args.text_view,
            fit_check=not args.skip_fit_check, model_path=args.model_path,
        )
    for stage in getattr(pipeline.method, "stages_", {}).values():
        if stage.resumed_from is not None:
            print(f"stage {stage.stage}: resumed after epoch {stage.resumed_from + 1}")
        if stage.stage.startswith("refit"):
            print(f"stage {stage.stage}: {len(stage.history)} epochs on all training pairs")
            continue
        if stage.stage.startswith("model-"):  # a further ensemble member, epochs given
            print(f"stage {stage.stage}: {len(stage.history)} epochs on the fitting part")
            continue
        print(f"stage {stage.stage}: chose epoch {stage.best_epoch + 1} "
              f"(validation {stage.best_score:.4f})")
    semantic = getattr(pipeline.method, "semantic_weight_scores_", None)
    if semantic:
        chosen = pipeline.method.config.model.semantic_weight
        tried = ", ".join(f"{w:g}: {score:.4f}" for w, score in semantic.items())
        print(f"semantic weight: chose {chosen:g} on validation ({tried})")
    _print_pretrained_weight(pipeline.method)
    _print_metrics(metrics)
    print(f"saved run to {args.out}")
    return 0


def _print_pretrained_weight(method) -> None:
    """Which validation chose: fglab's score, the zero-shot score, or a sum of both."""
    scores = getattr(method, "pretrained_weight_scores_", None)
    if not scores:
        return
    from fglab.config import ZERO_SHOT_ONLY

    chosen = method.config.model.pretrained_weight
    names = {0.0: "fglab alone", ZERO_SHOT_ONLY: "zero-shot alone"}
    tried = ", ".join(f"{names.get(w, f'{w:g}')}: {score:.4f}" for w, score in scores.items())
    print(f"pretrained model's cosine in the score: chose {names.get(chosen, f'{chosen:g}')} "
          f"on validation ({tried})")


def run_evaluate(args: argparse.Namespace) -> int:
    pipeline = RetrievalPipeline.load(args.run)
    metrics = evaluate_pipeline(pipeline, args.run, args.data_root)
    if args.json:
        print(json.dumps(metrics))
    else:
        _print_metrics(metrics)
    return 0
