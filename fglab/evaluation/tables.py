"""Markdown tables of benchmark results: mean ± std over seeds."""

from __future__ import annotations

HEADER = (
    "| method | img→txt MAP@all | txt→img MAP@all | avg MAP@all "
    "| img→txt MAP@100 | txt→img MAP@100 | avg MAP@100 | seconds |"
)


def _cell(stats: dict) -> str:
    return f"{stats['mean']:.4f} ± {stats['std']:.4f}"


def method_row(name: str, summary: dict) -> str:
    cells = [
        _cell(summary[metric][direction])
        for metric in ("map_all", "map_100")
        for direction in ("img2txt", "txt2img", "avg")
    ]
    return f"| {name} | " + " | ".join(cells) + f" | {summary['seconds']:.1f} |"


def results_markdown(payload: dict) -> str:
    """The whole results.md: a caption and one row per method."""
    n_seeds = len(payload["seeds"])
    lines = [
        f"# {payload['dataset']}: {payload['n_train']} train / {payload['n_test']} test pairs, "
        f"{n_seeds} seed{'s' if n_seeds != 1 else ''}",
        "",
        HEADER,
        "|" + "---|" * 8,
    ]
    lines += [method_row(name, summary) for name, summary in payload["methods"].items()]
    views = {f"{s['image_view']} + {s['text_view']}" for s in payload["methods"].values()}
    lines += ["", "Features: " + "; ".join(sorted(views)), ""]
    return "\n".join(lines)
