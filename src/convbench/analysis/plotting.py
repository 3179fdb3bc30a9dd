"""Matplotlib on the Agg backend with the paper's seaborn theme, and the page a figure shows when its data is missing."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)

__all__ = ["plt", "sns", "placeholder", "save"]


def placeholder(path: Path, text: str) -> Path:
    """A small page that says why the figure has nothing to show, instead of a crash."""
    fig, ax = plt.subplots(figsize=(5, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return save(fig, path)


def save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
