"""The benchmark runner: methods x seeds on one data set -> results.json, results.md, plots."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fglab.data.collection import is_labeled, load_training_collection
from fglab.data.dataset import CrossModalDataset
from fglab.data.sources import CollectionSource
from fglab.evaluation.protocol import DIRECTIONS, DirectionalScores, evaluate_method
from fglab.features.featureset import FeatureSet
from fglab.features.model_folder import uses_model_folder
from fglab.features.views import build_features, choose_views
from fglab.io import atomic_write_text
from fglab.method import NO_CATEGORIES, ReportContext, check_trains_on_pairs, fit_method
from fglab.registry import get_method, pretrained_config

logger = logging.getLogger(__name__)
METRICS = ("map_all", "map_100")


@dataclass
class MethodResult:
    """All runs of one method: one DirectionalScores per seed, plus wall time."""

    name: str
    views: tuple[str, str]
    runs: list[DirectionalScores] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self, labeled: bool = True) -> dict:
        """Mean, std and runs of every score; MAP and precision-recall only ``labeled`` (with
        categories to be relevant by)."""
        out: dict = {"image_view": self.views[0], "text_view": self.views[1]}
        runs = self.runs
        for metric in METRICS if labeled else ():
            out[metric] = {
                d: _stats([getattr(run, metric)[d] for run in runs]) for d in (*DIRECTIONS, "avg")
            }
        out["recall"] = {
            d: {k: _stats([run.recall[d][k] for run in runs]) for k in runs[0].recall[d]}
            for d in DIRECTIONS
        }
        out["median_rank"] = {d: _stats([run.median_rank[d] for run in runs]) for d in DIRECTIONS}
        if labeled:
            out["pr_curves"] = {
                d: np.mean([run.pr_curves[d] for run in runs], axis=0).tolist() for d in DIRECTIONS
            }
        out["seconds"] = self.seconds
        return out


def _stats(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "runs": values}


def method_views(
    dataset: CrossModalDataset,
    method_name: str,
    image_view: str | None = None,
    text_view: str | None = None,
    pairs: bool = False,
    model_folder: bool = False,
) -> tuple[str, str]:
    """The (image, text) views a method gets: the named ones, or by default the data set's
    image view and tf-idf (``pairs``: PAIR_IMAGE_VIEW and PAIR_TEXT_VIEW), for every method
    alike (equal features: the words fglab's graph needs; the literature's shipped LDA view
    only when named); with a ``model_folder``, its towers (:func:`choose_views`)."""
    method = get_method(method_name).method_class  # its traits: nothing built or fitted
    return choose_views(dataset, method_name, method.text_input, method.fixed_views, pairs,
                        image_view, text_view, model_folder)


def run_method(
    dataset: CrossModalDataset,
    method_name: str,
    seeds: list[int],
    features: tuple[FeatureSet, FeatureSet],
    views: tuple[str, str],
    out_dir: Path | None = None,
    on_run: Callable[[], None] | None = None,
    pairs: bool = False,
    config: dict | None = None,
) -> MethodResult:
    """Fit and evaluate ``method_name`` (options ``config``) once per seed (``pairs``: at
    pair level)."""
    train, test = features
    result = MethodResult(method_name, views)
    start = time.perf_counter()
    options = {"config": config} if config else {}
    for seed in seeds:
        method = fit_method(get_method(method_name).build(seed=seed, **options), train, seed,
                            pairs)
        result.runs.append(evaluate_method(method, test))
        if out_dir is not None and seed == seeds[0]:
            context = ReportContext(  # at pair level a label is a pair, not a category
                dataset.train.text_ids, dataset.train.image_ids, dataset.train.texts,
                [] if pairs else dataset.categories,
            )
            method.write_report(out_dir / "reports" / method_name, context)
        if on_run is not None:
            on_run()
    result.seconds = time.perf_counter() - start
    return result


def write_results(
    out_dir: Path,
    dataset: CrossModalDataset,
    summaries: dict[str, dict],
    seeds: list[int],
    pairs: bool = False,
    model: dict | None = None,
) -> dict:
    """results.json, results.md and (with categories) pr_curves.png, each written atomically;
    ``model``: the pretrained model folder's record, where one was given."""
    from fglab.evaluation.plots import plot_pr_curves
    from fglab.evaluation.tables import results_markdown

    payload = {
        "dataset": dataset.name,
        "n_train": len(dataset.train),
        "n_test": len(dataset.test),
        "seeds": seeds,
        "pairs": pairs,
        "model": model,
        "methods": summaries,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "results.json", json.dumps(payload, indent=2))
    atomic_write_text(out_dir / "results.md", results_markdown(payload))
    if is_labeled(dataset):
        plot_pr_curves(payload, out_dir / "pr_curves.png")
    return payload


def _reusable(summary: dict | None, views: tuple[str, str], runs: int,
              on_run: Callable[[], None] | None) -> bool:
    """Whether an earlier summary holds the method on the same views (its runs then count as
    done for ``on_run``)."""
    reused = summary is not None and (summary["image_view"], summary["text_view"]) == views
    for _ in range(runs if reused and on_run is not None else 0):
        on_run()
    return reused


def _pair_level_methods(
    names: list[str], on_skip: Callable[[str, str], None] | None
) -> list[str]:
    """The methods that can train at pair level; the others are reported and left out."""
    kept = []
    for name in names:
        try:
            check_trains_on_pairs(get_method(name).method_class, name)
        except ValueError as error:
            logger.warning("skipping %s", error)
            if on_skip is not None:
                on_skip(name, str(error))
            continue
        kept.append(name)
    if not kept:
        raise ValueError(f"none of {', '.join(names)} can train at pair level; {NO_CATEGORIES}")
    return kept


def previous_summaries(
    out_dir: Path, dataset_name: str, seeds: list[int], pairs: bool = False,
    model: dict | None = None,
) -> dict[str, dict]:
    """Methods already finished in ``out_dir/results.json`` for the same data set, seeds,
    training level and pretrained model (its weights' checksum)."""
    path = out_dir / "results.json"
    if not path.is_file():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable %s: %s", path, error)
        return {}
    same = (payload.get("dataset"), payload.get("seeds"), bool(payload.get("pairs", False)),
            (payload.get("model") or {}).get("sha256"))
    if same != (dataset_name, seeds, pairs, (model or {}).get("sha256")):
        return {}
    return dict(payload.get("methods", {}))


def reproduce(
    dataset_name: str | CollectionSource,
    method_names: list[str],
    n_seeds: int,
    out_dir: Path,
    data_root: str | None = None,
    on_method_done: Callable[[str, dict, bool], None] | None = None,
    on_run: Callable[[], None] | None = None,
    fresh: bool = False,
    rerun: Iterable[str] = (),
    image_view: str | None = None,
    text_view: str | None = None,
    pairs: bool = False,
    on_skip: Callable[[str, str], None] | None = None,
    model_path: str | Path | None = None,
) -> dict:
    """Run every method with seeds 0..n_seeds-1 on a data set or manifest source; returns
    what results.json holds. With ``image_view`` / ``text_view`` every method gets those views
    (equal features). ``pairs`` (implied by a manifest without labels): every method trains
    with each pair its own class; methods that need categories are skipped
    (``on_skip(name, why)``).

    Results are written after each method, so a killed run keeps what it finished; run again
    with the same data set and seeds, it reuses those methods (``fresh=True`` reruns all,
    ``rerun`` the named ones: after a change to a method, the others are kept).
    ``on_method_done(name, summary, reused)`` is called as each method completes.
    ``model_path``: a pretrained model folder, whose towers are every method's default views
    (``pretrained``: zero-shot search in them; the fglab methods: its text tower teaches).
    """
    if n_seeds < 1:
        raise ValueError(f"--seeds must be at least 1, got {n_seeds}")
    model = None
    if model_path is not None:  # a bad folder is one line before any work
        from fglab.features.pretrained import use_model

        model = use_model(model_path).record()
    rerun = set(rerun)
    for name in (*method_names, *rerun):
        get_method(name)  # fail before any work on an unknown name
    dataset = load_training_collection(dataset_name, data_root, pairs=pairs)
    pairs = pairs or not is_labeled(dataset)
    if pairs:
        method_names = _pair_level_methods(method_names, on_skip)
    views_of = {name: method_views(dataset, name, image_view, text_view, pairs, model is not None)
                for name in method_names}
    seeds = list(range(n_seeds))
    previous = {} if fresh else previous_summaries(out_dir, dataset.name, seeds, pairs, model)
    previous = {name: summary for name, summary in previous.items() if name not in rerun}
    feature_cache: dict[tuple[str, str], tuple[FeatureSet, FeatureSet]] = {}
    summaries: dict[str, dict] = {}
    payload: dict = {}
    for name in method_names:
        views = views_of[name]  # checked for every method before any work
        summary = previous.get(name)
        reused = _reusable(summary, views, len(seeds), on_run)
        if not reused:
            if views not in feature_cache:
                feature_cache[views] = build_features(dataset, *views)
            config = pretrained_config(name, None) if uses_model_folder(views[1]) else None
            result = run_method(dataset, name, seeds, feature_cache[views], views, out_dir,
                                on_run, pairs, config)
            summary = result.summary(is_labeled(dataset))
        summaries[name] = summary
        payload = write_results(out_dir, dataset, summaries, seeds, pairs, model)
        if on_method_done is not None:
            on_method_done(name, summary, reused)
    return payload
