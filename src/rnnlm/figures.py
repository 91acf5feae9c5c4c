"""Figures written as PNG files (they open anywhere, unlike `dvc plots show`'s HTML offline)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rnnlm.io import atomic_path


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a build machine
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | os.PathLike[str]) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    pyplot().close(fig)


def training_curves(path: str | os.PathLike[str], history: Sequence[dict[str, float]],
                    title: str = "") -> None:
    """Train and validation perplexity per epoch, log scale."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    epochs = [row["epoch"] for row in history]
    for key, label in (("train_ppl", "train"), ("val_ppl", "validation")):
        ax.plot(epochs, [row[key] for row in history], marker="o", markersize=3, label=label)
    ax.set_yscale("log")
    # Plain numbers on the log axis (matplotlib would write 4x10^0, 6x10^0), whole epochs below.
    from matplotlib.ticker import LogLocator, MaxNLocator, ScalarFormatter

    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_minor_locator(LogLocator(subs="auto"))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter("")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity (log)")
    ax.set_title(title or "Training curves")
    ax.legend()
    save_png(fig, path)
