"""``fglab datasets list`` and ``fglab datasets check NAME``."""

from __future__ import annotations

import argparse
from collections import Counter

from fglab.data.dataset import CrossModalDataset
from fglab.data.problems import summarize
from fglab.data.root import resolve_data_root
from fglab.data.wikipedia import load_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("datasets", help="list data sets or check one")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="data sets found under the data root")
    listing.set_defaults(func=list_datasets)
    check = actions.add_parser("check", help="counts per split and category, and every problem")
    check.add_argument("name", help="data set name under the data root, or a folder")
    check.add_argument("--all", action="store_true", help="print every problem, one per line")
    check.set_defaults(func=check_dataset)


def list_datasets(args: argparse.Namespace) -> int:
    root = resolve_data_root(args.data_root)
    print(f"data root: {root}")
    for folder in sorted(p for p in root.iterdir() if (p / "trainset_txt_img_cat.list").exists()):
        print(f"  {folder.name}")
    return 0


def check_report(dataset: CrossModalDataset, show_all: bool = False) -> str:
    """Counts per split and category, then every problem (summarized, or one per line)."""
    lines = [
        f"{dataset.name}: {dataset.path}",
        f"language: {dataset.language}; images: "
        f"{'files under images/' if dataset.has_images else 'none (shipped features only)'}; "
        f"shipped features: {', '.join(sorted(dataset.train.shipped)) or 'none'}",
        "",
        f"{'category':<24}{'train':>8}{'test':>8}",
    ]
    train_counts, test_counts = Counter(dataset.train.labels), Counter(dataset.test.labels)
    for index, category in enumerate(dataset.categories):
        lines.append(f"{category:<24}{train_counts[index]:>8}{test_counts[index]:>8}")
    lines.append(f"{'total':<24}{len(dataset.train):>8}{len(dataset.test):>8}")
    lines.append("")
    skipped = sum(p.skipped for p in dataset.problems)
    lines.append(f"problems: {len(dataset.problems)} ({skipped} pairs skipped)")
    if show_all:
        lines += [f"  {p}" for p in dataset.problems]
    else:
        lines += [f"  {line}" for line in summarize(dataset.problems, dataset.name)]
    return "\n".join(lines)


def check_dataset(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.name, args.data_root, log_problems_found=False)  # printed below
    print(check_report(dataset, args.all))
    return 0
