"""Problems found in a data set: each names the item, the kind of problem and what was done;
:func:`printable`, the one way a collection's strings (ids, paths, labels, excerpts) reach a
message, a log or the terminal."""

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
        "text_too_large",
        "unknown_category",
        "unreadable_image",
        "unreadable_text",
    }
)


def _escape(char: str) -> str:
    return char if char.isprintable() else repr(char)[1:-1]


def printable(value: object, limit: int | None = 80) -> str:
    """``value`` as text safe to show: every character Python does not call printable
    (Unicode Cc and Cf, so ESC, BEL, NUL, U+202E and U+200B; line breaks, unassigned code
    points) escaped as ``repr`` escapes it (``\\x1b``, ``\\u202e``), cut to ``limit``
    characters (None: not cut) with an ellipsis, never inside an escape. Backslashes are
    kept, so escaping twice changes nothing."""
    text = str(value)
    if limit is None:
        return text if text.isprintable() else "".join(map(_escape, text))
    pieces = [_escape(char) for char in text[: limit + 1]]  # each char shows as 1+ chars
    if len(text) <= limit and sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    kept, length = [], 0
    for piece in pieces:
        if length + len(piece) > limit - 1:
            break
        kept.append(piece)
        length += len(piece)
    return "".join(kept) + "\u2026"


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
        item, detail = printable(self.item), printable(self.detail, None)
        return f"[{self.split}] {self.kind}: {item} ({detail}; {action})"


def summarize(problems: list[Problem], dataset: str, max_ids: int = 10) -> list[str]:
    """One line per kind of problem: the count and the first ids."""
    lines = []
    counts = Counter(p.kind for p in problems)
    for kind, count in sorted(counts.items()):
        items = [printable(p.item) for p in problems if p.kind == kind]
        shown = ", ".join(items[:max_ids]) + (", ..." if len(items) > max_ids else "")
        action = "skipped" if kind in SKIPPING_KINDS else "kept"
        lines.append(f"{printable(dataset, None)}: {count} x {kind} ({action}): {shown}")
    return lines


def log_problems(problems: list[Problem], dataset: str) -> None:
    """Skipped pairs as warnings; repaired or noted items at info level."""
    for line in summarize([p for p in problems if p.skipped], dataset):
        logger.warning(line)
    for line in summarize([p for p in problems if not p.skipped], dataset):
        logger.info(line)
