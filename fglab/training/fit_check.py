"""Whether a training job fits this machine, judged from the collection's size before any
feature is computed, so a job that cannot fit stops with one line instead of meeting the
kernel's out-of-memory killer hours later.

Training holds no array that grows faster than the collection (no n x n), so its peak memory
is a fixed part plus a part per pair: the image features (float32, held as the feature
store's read, the training tensor, the refit's concatenation and the test split's rows) and
the texts (strings, tokens, sparse tf-idf rows). The constants come from
``benchmarks/scale.py`` (peak RSS of `fglab train` on synthetic collections, the README)
with a margin; the time is a rough guide from the same runs on an idle two-core machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

#: Resident memory of a training process before any collection: Python, torch, tokenizers.
BASE_BYTES = 1.4 * 2**30
#: Copies of the image feature matrix alive at the peak (see the module's docstring).
IMAGE_COPIES = 4
#: Bytes per character of text: the string, its tokens and its tf-idf row, with copies.
TEXT_BYTES_PER_CHAR = 16
#: Safety margin on the estimate: allocator slack and what the constants do not see.
MARGIN = 1.25
#: Seconds of a default fglab fit per training pair on an idle two-core machine (scale runs).
SECONDS_PER_PAIR = 0.015
#: Memory other processes need too: never plan to use more than this share of what is free.
USABLE_SHARE = 0.9


class JobTooLarge(MemoryError):
    """The job would not fit this machine's memory; the message says what to change."""


@dataclass(frozen=True)
class FitEstimate:
    pairs: int
    peak_bytes: float
    seconds: float

    def describe(self) -> str:
        return (
            f"{self.pairs:,} pairs: about {self.peak_bytes / 2**30:.1f} GB of memory and "
            f"{_duration(self.seconds)} on two idle cores"
        )


def estimate_fit(pairs: int, image_dim: int, text_chars: int) -> FitEstimate:
    """Peak memory and rough time of training on ``pairs`` pairs (training and test rows
    together) with ``image_dim``-d image features and ``text_chars`` characters of text."""
    per_collection = pairs * image_dim * 4 * IMAGE_COPIES + text_chars * TEXT_BYTES_PER_CHAR
    return FitEstimate(pairs, (BASE_BYTES + per_collection) * MARGIN, pairs * SECONDS_PER_PAIR)


def check_fit(estimate: FitEstimate, available: float | None = None) -> None:
    """Raise JobTooLarge (one line: the need, what is free, what to change) where the
    estimate exceeds the usable share of ``available`` bytes (default: this machine's)."""
    available = available_memory() if available is None else available
    if estimate.peak_bytes <= available * USABLE_SHARE:
        return
    fitting = _pairs_that_fit(estimate, available * USABLE_SHARE)
    smaller = (
        f"train on at most about {fitting:,} pairs (a sample of the manifest's lines), "
        if fitting > 0
        else ""
    )
    raise JobTooLarge(
        f"this job does not fit: {estimate.pairs:,} pairs need about "
        f"{estimate.peak_bytes / 2**30:.1f} GB and {available / 2**30:.1f} GB is available; "
        f"{smaller}free memory or use a machine with more (--skip-fit-check to try anyway)"
    )


def _pairs_that_fit(estimate: FitEstimate, usable: float) -> int:
    per_pair = (estimate.peak_bytes / MARGIN - BASE_BYTES) / max(estimate.pairs, 1)
    return max(0, int((usable / MARGIN - BASE_BYTES) / per_pair)) if per_pair > 0 else 0


def available_memory(
    meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup")
) -> float:
    """Bytes this process may still allocate: the kernel's MemAvailable, lowered to what a
    cgroup v2 memory limit leaves (containers); infinite where neither can be read."""
    free = math.inf
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text().strip())
            free = min(free, int(limit) - used)
    except (OSError, ValueError):
        pass
    return free


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
