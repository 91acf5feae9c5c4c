"""The sequence stage's figure, drawn as the book draws it: the data with one-step and fed-back
predictions, then each model's k-step-ahead predictions."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from rnnlm.figures import pyplot, save_png


def forecast_figure(path: str | os.PathLike[str], series: np.ndarray, fit_points: int,
                    one_step: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    free_run: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    k_step: Mapping[str, Mapping[int, tuple[np.ndarray, np.ndarray]]]) -> None:
    """`one_step` and `free_run` map a model's name to (t, predictions); `k_step` maps it to
    {k: (t, predictions)}. Time is 1-based, as in x_1..x_T."""
    plt = pyplot()
    fig, axes = plt.subplots(1 + len(k_step), 1, figsize=(8, 3 * (1 + len(k_step))),
                             sharex=True)
    time = np.arange(1, len(series) + 1)
    top = axes[0]
    top.plot(time, series, color="0.7", linewidth=1, label="data")
    colours = {name: f"C{i}" for i, name in enumerate(one_step)}  # a model keeps its colour
    for name, (t, values) in one_step.items():
        top.plot(t, values, linewidth=1, color=colours[name], label=f"{name}: 1-step")
    for name, (t, values) in free_run.items():
        top.plot(t, values, linewidth=1.5, linestyle="--", color=colours[name],
                 label=f"{name}: fed back from t={t[0]}")
    top.set_title("One-step-ahead predictions, and predictions fed back after the fitted part")
    for ax, (name, by_k) in zip(axes[1:], k_step.items(), strict=True):
        ax.plot(time, series, color="0.8", linewidth=1, label="data")
        for k, (t, values) in by_k.items():
            ax.plot(t, values, linewidth=1, label=f"{k}-step")
        ax.set_title(f"{name}: k-step-ahead predictions")
    for ax in axes:
        ax.axvline(fit_points + 0.5, color="0.3", linewidth=0.8, linestyle=":")
        ax.set_ylabel("x")
        ax.legend(fontsize=7, loc="lower left", ncols=2)
    axes[-1].set_xlabel("t (dotted: end of the fitted points)")
    save_png(fig, path)
