"""``fglab reproduce NAME``: every method x seeds, with a progress bar and the table."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from fglab.cli.train import (
    PAIRS_HELP,
    add_model_path_argument,
    add_threads_argument,
    add_view_arguments,
)
from fglab.data.sources import CollectionSource, parse_source
from fglab.evaluation.tables import EXACT_PAIR_HEADER, HEADER, exact_pair_row, method_row
from fglab.experiments import reproduce
from fglab.hardware import set_threads
from fglab.registry import method_names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("reproduce", help="benchmark methods on a data set")
    parser.add_argument(
        "name", help="data set name (e.g. eng-wiki) or manifest:PATH (a CSV/JSONL manifest)"
    )
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated, from: {', '.join(method_names())} (default: all but dscmr, "
        "which takes minutes a seed, and pretrained, which comes first with --model-path)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="runs per method (default 5)")
    parser.add_argument("--out", type=Path, default=None, help="default: results/NAME")
    parser.add_argument(
        "--fresh", action="store_true",
        help="rerun every method, even those already in OUT/results.json for the same seeds",
    )
    parser.add_argument(
        "--rerun", default="",
        help="comma-separated methods to rerun even if OUT/results.json has them (others reused)",
    )
    add_view_arguments(parser, "every method")
    add_model_path_argument(parser)
    parser.add_argument("--pairs", action="store_true", help=PAIRS_HELP + "; methods that "
                        "need categories (sm, scm, sm-svm, dscmr) are skipped")
    add_threads_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    methods = _methods(args.methods, args.model_path is not None)
    source = parse_source(args.name)
    out_dir = args.out or Path("results") / _results_name(source, args.pairs)
    header_printed = False
    with tqdm(total=len(methods) * args.seeds, desc=args.name, unit="run", leave=False) as bar:

        def done(name: str, summary: dict, reused: bool) -> None:
            nonlocal header_printed
            bar.set_postfix_str(name)
            labeled = "map_all" in summary
            if not header_printed:
                tqdm.write(HEADER if labeled else EXACT_PAIR_HEADER)
                tqdm.write("|" + "---|" * (8 if labeled else 9))
                header_printed = True
            note = " (reused from an earlier run; --rerun NAME reruns it)" if reused else ""
            row = method_row(name, summary) if labeled else exact_pair_row(name, summary)
            tqdm.write(row + note)

        def skipped(name: str, why: str) -> None:
            bar.total -= args.seeds
            tqdm.write(f"skipping {why}")

        reproduce(
            source, methods, args.seeds, out_dir, args.data_root,
            on_method_done=done, on_run=lambda: bar.update(1), fresh=args.fresh,
            rerun=[m.strip() for m in args.rerun.split(",") if m.strip()],
            image_view=args.image_view, text_view=args.text_view, pairs=args.pairs,
            on_skip=skipped, model_path=args.model_path,
        )
    print(f"\nwrote {out_dir / 'results.json'} and results.md (pr_curves.png with categories)")
    return 0


def _methods(named: str | None, model_folder: bool) -> list[str]:
    """The named methods, else the default table (the zero-shot row first with a model
    folder)."""
    if named is not None:
        return [m.strip() for m in named.split(",") if m.strip()]
    return (["pretrained"] if model_folder else []) + method_names(default_table=True)


def _results_name(source: CollectionSource, pairs: bool) -> str:
    """results/NAME: the data set's or manifest's name, "-pairs" when trained at pair level."""
    return source.stem + ("-pairs" if pairs else "")
