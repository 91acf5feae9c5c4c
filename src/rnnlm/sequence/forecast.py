"""Scoring autoregressive models on the points after the fitted part: one-step, k-step-ahead and
free-running predictions, with the curves the figure draws.

Every model is fitted on the first `fit` points only, so no held-out point is ever a training
target. The k-step errors of every k are scored on the same targets (those with room for the
longest k), so that they compare across k.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rnnlm.errors import RnnlmError
from rnnlm.sequence.autoregressive import Predictor, free_run, k_step, one_step

Curve = tuple[np.ndarray, np.ndarray]  # (t, predictions), t 1-based as in x_1..x_T


def fit_points(fit: int | float, length: int) -> int:
    """sequence.fit as a number of points: a count as is, a fraction of the series rounded."""
    return round(fit * length) if isinstance(fit, float) else fit


def held_out_start(series: np.ndarray, fit: int, lags: int, k_max: int) -> int:
    """First target scored: past the fitted points, with room for the longest k-step window."""
    if fit >= len(series):
        raise RnnlmError(f"sequence.fit asks for {fit} points to fit on, but the series has "
                         f"{len(series)}: none would be left to score the predictions on. Fit "
                         "on fewer points")
    start = max(fit, lags + k_max - 1)
    if start >= len(series):
        raise RnnlmError(f"a {k_max}-step prediction with {lags} lags needs "
                         f"{lags + k_max - 1} points before its target, but the series has only "
                         f"{len(series)} points: use a longer series or smaller sequence.steps")
    return start


def mse(predicted: np.ndarray, observed: np.ndarray) -> float:
    return float(np.mean((predicted - observed) ** 2))


@dataclass
class Forecasts:
    """Each model's errors, and its predictions as curves for the figure."""

    k_step_targets: int  # targets scored at every k
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    one_step: dict[str, Curve] = field(default_factory=dict)
    free_run: dict[str, Curve] = field(default_factory=dict)
    k_step: dict[str, dict[int, Curve]] = field(default_factory=dict)


def forecast(models: Mapping[str, Predictor], series: np.ndarray, fit: int, lags: int,
             steps: Sequence[int]) -> Forecasts:
    """Score every model on the points after the first `fit`, for each k in `steps`."""
    start = held_out_start(series, fit, lags, max(steps))
    # Targets as 0-based indices into the series; every k-step target is drawn, as the book does.
    drawn = np.arange(lags + max(steps) - 1, len(series))
    scored = drawn >= start
    out = Forecasts(k_step_targets=int(scored.sum()))
    for name, predict in models.items():
        one = one_step(predict, series, lags)  # targets lags..T-1
        free = free_run(predict, series, lags, fit)
        metrics = {"fit_mse": mse(one[: fit - lags], series[lags:fit]),
                   "one_step_mse": mse(one[fit - lags:], series[fit:]),
                   "free_run_mse": mse(free, series[fit:])}
        out.k_step[name] = {}
        for k in steps:
            predicted = k_step(predict, series, lags, k, drawn)
            metrics[f"mse_k{k}"] = mse(predicted[scored], series[drawn[scored]])
            out.k_step[name][k] = (drawn + 1, predicted)
        out.one_step[name] = (np.arange(lags, len(series)) + 1, one)
        out.free_run[name] = (np.arange(fit, len(series)) + 1, free)
        out.metrics[name] = metrics
    return out
