"""Precision-recall plots of benchmark results."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fglab.io import atomic_write  # noqa: E402
from fglab.metrics import RECALL_LEVELS  # noqa: E402

TITLES = {"img2txt": "image → text", "txt2img": "text → image"}


def plot_pr_curves(payload: dict, path: Path) -> None:
    """One panel per direction, one line per method (11-point interpolated precision)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, (direction, title) in zip(axes, TITLES.items(), strict=True):
        for name, summary in payload["methods"].items():
            ax.plot(RECALL_LEVELS, summary["pr_curves"][direction], marker="o", ms=3, label=name)
        ax.set_title(f"{payload['dataset']}: {title}")
        ax.set_xlabel("recall")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("interpolated precision")
    axes[1].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
