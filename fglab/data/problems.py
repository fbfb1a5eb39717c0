"""Problems found in a data set: each names the item, the kind of problem and what was done."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Kinds whose pair cannot be used and is skipped; the rest are repaired or only noted.
SKIPPING_KINDS = frozenset(
    {
        "bad_line",
        "bad_row",
        "duplicate_pair",
        "empty_text",
        "missing_image",
        "missing_text",
        "not_a_pair",
        "unknown_category",
        "unreadable_image",
        "unreadable_text",
    }
)


@dataclass(frozen=True)
class Problem:
    """One problem with one item of a data set."""

    kind: str
    split: str
    item: str
    detail: str

    @property
    def skipped(self) -> bool:
        return self.kind in SKIPPING_KINDS

    def __str__(self) -> str:
        action = "skipped" if self.skipped else "kept"
        return f"[{self.split}] {self.kind}: {self.item} ({self.detail}; {action})"


def summarize(problems: list[Problem], dataset: str, max_ids: int = 10) -> list[str]:
    """One line per kind of problem: the count and the first ids."""
    lines = []
    counts = Counter(p.kind for p in problems)
    for kind, count in sorted(counts.items()):
        items = [p.item for p in problems if p.kind == kind]
        shown = ", ".join(items[:max_ids]) + (", ..." if len(items) > max_ids else "")
        action = "skipped" if kind in SKIPPING_KINDS else "kept"
        lines.append(f"{dataset}: {count} x {kind} ({action}): {shown}")
    return lines


def log_problems(problems: list[Problem], dataset: str) -> None:
    """Skipped pairs as warnings; repaired or noted items at info level."""
    for line in summarize([p for p in problems if p.skipped], dataset):
        logger.warning(line)
    for line in summarize([p for p in problems if not p.skipped], dataset):
        logger.info(line)
