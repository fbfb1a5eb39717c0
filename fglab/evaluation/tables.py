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


EXACT_PAIR_HEADER = (
    "| method | img→txt R@1 | R@5 | R@10 | median rank | txt→img R@1 | R@5 | R@10 "
    "| median rank |"
)


def exact_pair_row(name: str, summary: dict) -> str:
    """Recall@1/5/10 and median rank of the exact partner ("–" for results written before
    they were measured)."""
    if "recall" not in summary:
        return f"| {name} | " + " | ".join(["–"] * 8) + " |"
    cells = []
    for direction in ("img2txt", "txt2img"):
        cells += [_cell(summary["recall"][direction][k]) for k in ("1", "5", "10")]
        rank = summary["median_rank"][direction]
        cells.append(f"{rank['mean']:.1f} ± {rank['std']:.1f}")
    return f"| {name} | " + " | ".join(cells) + " |"


def results_markdown(payload: dict) -> str:
    """The whole results.md: a caption and one row per method."""
    n_seeds = len(payload["seeds"])
    methods = payload["methods"]
    level = ", trained at pair level (categories ignored)" if payload.get("pairs") else ""
    lines = [
        f"# {payload['dataset']}: {payload['n_train']} train / {payload['n_test']} test pairs, "
        f"{n_seeds} seed{'s' if n_seeds != 1 else ''}{level}",
        "",
    ]
    if all("map_all" in summary for summary in methods.values()):  # with categories
        lines += [HEADER, "|" + "---|" * 8]
        lines += [method_row(name, summary) for name, summary in methods.items()]
        lines.append("")
    views = {f"{s['image_view']} + {s['text_view']}" for s in methods.values()}
    lines += ["Features: " + "; ".join(sorted(views)), ""]
    lines += [
        f"Exact pair: the item's own partner among the {payload['n_test']} test items "
        "(Recall@K, median rank; mean ± std over seeds)",
        "",
        EXACT_PAIR_HEADER,
        "|" + "---|" * 9,
    ]
    lines += [exact_pair_row(name, summary) for name, summary in payload["methods"].items()]
    lines.append("")
    return "\n".join(lines)
