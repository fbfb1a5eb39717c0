"""The hardness report: what the siamese network made of the training pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fglab.data.tokenize import make_tokenizer
from fglab.io import atomic_write, atomic_write_text
from fglab.labels import hardness, similarity_labels
from fglab.method import ReportContext
from fglab.training.fitted import FittedFGLab

N_HARDEST = 5
#: Texts whose pairs the report grades: all of them up to this many, else a seeded sample
#: (the statistics then describe the pairs among the sample: 9M pairs at most).
REPORT_TEXTS = 3000


def write_hardness_report(
    method: FittedFGLab, out_dir: Path, context: ReportContext
) -> None:
    """hardness.json (siamese text->text MAP, label statistics), label_histograms.png and
    hardest_pairs.txt; with uniform labels only hardness.json, saying so."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = method.config.labels
    summary: dict = {"label_mode": config.mode, "strength": config.strength}
    if method.grades_ is None:
        summary["note"] = "uniform labels: no siamese network was trained"
        atomic_write_text(out_dir / "hardness.json", json.dumps(summary, indent=2))
        return
    data = method.report_data_
    n = len(data["labels"])
    sample = np.arange(n)
    if n > REPORT_TEXTS:
        rng = np.random.default_rng(method.config.seed)
        sample = np.sort(rng.choice(n, REPORT_TEXTS, replace=False))
    h = method.grades_.block(sample, sample)
    sampled_labels = data["labels"][sample]
    positive = sampled_labels[:, None] == sampled_labels[None, :]
    off = ~np.eye(len(h), dtype=bool)
    labels = similarity_labels(h, config)
    teachers = [stage for name, stage in method.stages_.items() if name.startswith("siamese")]
    summary.update(
        teacher=config.teacher,
        teacher_folds=config.teacher_folds,
        siamese_text2text_map_validation=method.siamese_map_,
        siamese_networks=len(teachers),
        siamese_best_epochs=[stage.best_epoch for stage in teachers],
        graded_texts=n,
        sampled_texts=len(sample),  # the pairs below are those among these texts
        positive_pairs=int((positive & off).sum()),  # 0 at pair level: a pair's only match
        negative_pairs=int((~positive).sum()),
        mean_label_positive=_mean(labels[positive & off]),
        mean_label_negative=_mean(labels[~positive]),
        mean_hardness_positive=_mean(hardness(labels, positive)[positive & off]),
        mean_hardness_negative=_mean(hardness(labels, positive)[~positive]),
        # how the labels spread over the negatives: near duplicates get the most weight
        negative_label_quantiles={
            str(q): float(np.quantile(labels[~positive], q)) for q in (0.5, 0.9, 0.99)
        },
    )
    atomic_write_text(out_dir / "hardness.json", json.dumps(summary, indent=2))
    _plot_histograms(labels[positive & off], labels[~positive], out_dir / "label_histograms.png")
    tokens = data["tokens"]
    sampled_tokens = [tokens[i] for i in sample] if tokens is not None else None
    rows = _context_rows(sampled_tokens, method.vocabulary_, method.language_, context)
    text = _hardest_pairs_text(
        h, positive & off, ~positive, sampled_labels, rows, context, sample
    )
    atomic_write_text(out_dir / "hardest_pairs.txt", text)


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def _plot_histograms(pos: np.ndarray, neg: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, values, title in ((axes[0], pos, "positives"), (axes[1], neg, "negatives")):
        ax.hist(values, bins=np.linspace(0, 1, 21), color="tab:blue")
        ax.set_title(f"labels of {title} ({len(values)} pairs)")
        ax.set_xlabel("siamese text similarity h (label)")
    axes[0].set_ylabel("pairs")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _context_rows(
    tokens: list[list[str]] | None, vocabulary: list[str], language: str, context: ReportContext
) -> list[int | None]:
    """The context row of each fitted text, matched by its in-vocabulary words (the method sees
    a subset of the training split, not its row numbers); None where no text matches."""
    if tokens is None:
        return []
    vocab = set(vocabulary)
    tokenizer = make_tokenizer(language)
    index: dict[tuple[str, ...], int] = {}
    for row, text in enumerate(context.texts):
        index.setdefault(tuple(w for w in tokenizer(text) if w in vocab), row)
    return [index.get(tuple(w for w in doc if w in vocab)) for doc in tokens]


def _describe(
    i: int, rows: list[int | None], labels: np.ndarray, context: ReportContext,
    training_rows: np.ndarray,
) -> str:
    category = context.categories[labels[i]] if labels[i] < len(context.categories) else labels[i]
    row = rows[i] if i < len(rows) else None
    if row is None:
        return f"[{category}] (training row {training_rows[i]})"
    snippet = " ".join(context.texts[row].split())[:160]
    return f"[{category}] text {context.text_ids[row]} / image {context.image_ids[row]}: {snippet}"


def _hardest_pairs_text(
    h, pos_mask, neg_mask, labels, rows, context: ReportContext, training_rows: np.ndarray
) -> str:
    lines = ["Hardest pairs by the teacher's text similarity h (scaled to [0, 1]).", ""]
    sections = [
        ("Hardest positives (same category, least similar texts)", pos_mask, 1.0),
        ("Hardest negatives (different categories, most similar texts)", neg_mask, -1.0),
    ]
    if not pos_mask.any():  # pair level: a pair's only positive is its own partner
        sections = [("Hardest negatives (other pairs, most similar texts; at pair level a "
                     "duplicate text is a negative too)", neg_mask, -1.0)]
    for title, mask, sign in sections:
        lines.append(title + ":")
        upper = np.triu(mask, k=1)
        candidates = np.flatnonzero(upper)
        order = candidates[np.argsort(sign * h.ravel()[candidates], kind="stable")[:N_HARDEST]]
        for flat in order:
            i, j = np.unravel_index(flat, h.shape)
            lines.append(f"  h = {h[i, j]:.3f}")
            lines.append("    " + _describe(i, rows, labels, context, training_rows))
            lines.append("    " + _describe(j, rows, labels, context, training_rows))
        lines.append("")
    return "\n".join(lines)
