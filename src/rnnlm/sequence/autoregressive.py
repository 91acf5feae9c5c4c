"""Autoregressive models of a numeric series and their predictions with feedback.

An AR(p) model predicts x_t from the window (x_{t-p}, ..., x_{t-1}), oldest first. The linear one is
x_t = phi_0 + phi_1 x_{t-1} + ... + phi_p x_{t-p} + e_t, fitted by least squares. Any model enters
the k-step-ahead predictions as a `Predictor`: a function from windows (n, p) to predictions (n,).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rnnlm.errors import RnnlmError

Predictor = Callable[[np.ndarray], np.ndarray]


def check_fit_size(points: int, lags: int) -> None:
    """p lags leave points - p equations for p + 1 unknowns (phi_0..phi_p)."""
    needed = 2 * lags + 1
    if points < needed:
        raise RnnlmError(f"{points} points are too few to fit an AR({lags}) model: its "
                         f"{lags + 1} coefficients need at least {needed} points (p lags "
                         "plus p + 1 equations). Fit on more points (sequence.fit) or use "
                         "fewer lags (sequence.lags)")


def lagged(series: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """(windows, targets): row i is (x_i, ..., x_{i+p-1}) and its target x_{i+p}."""
    check_fit_size(len(series), lags)
    windows = sliding_window_view(np.asarray(series, dtype=np.float64), lags)[:-1]
    return windows, np.asarray(series[lags:], dtype=np.float64)


@dataclass(frozen=True)
class LinearAR:
    intercept: float
    phi: np.ndarray  # phi[j] multiplies x_{t-1-j}

    @property
    def lags(self) -> int:
        return len(self.phi)

    @classmethod
    def fit(cls, series: np.ndarray, lags: int) -> LinearAR:
        """Least squares over every window of `series` (numpy's SVD solver, exact and stable)."""
        windows, targets = lagged(series, lags)
        design = np.column_stack([np.ones(len(windows)), windows[:, ::-1]])
        coefficients, *_ = np.linalg.lstsq(design, targets, rcond=None)
        return cls(float(coefficients[0]), coefficients[1:])

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return self.intercept + windows[:, ::-1] @ self.phi

    def as_dict(self) -> dict[str, float]:
        return {"phi0": self.intercept,
                **{f"phi{j}": float(v) for j, v in enumerate(self.phi, start=1)}}


def one_step(predict: Predictor, series: np.ndarray, lags: int) -> np.ndarray:
    """Predictions of x_t for t = p..n-1, each from the observed window before it."""
    return predict(sliding_window_view(series, lags)[:-1])


def k_step(predict: Predictor, series: np.ndarray, lags: int, k: int,
           targets: np.ndarray) -> np.ndarray:
    """Predictions of x_t for each t in `targets` from the observations up to x_{t-k}: the model
    predicts k times, each prediction joining the window in place of an observation."""
    first = np.asarray(targets) - k - lags + 1
    if first.size and first.min() < 0:
        raise RnnlmError(f"target {int(first.min()) + k + lags - 1} has fewer than "
                         f"{k + lags - 1} points before it for a {k}-step prediction")
    windows = series[first[:, None] + np.arange(lags)]
    for _ in range(k):  # k steps for all targets at once
        predicted = predict(windows)
        windows = np.column_stack([windows[:, 1:], predicted])
    return predicted


def free_run(predict: Predictor, series: np.ndarray, lags: int, start: int) -> np.ndarray:
    """Predictions of x_t for t = start..n-1 from the observations before `start` alone (the
    book's multistep prediction): every later window holds only predictions."""
    window = np.array(series[start - lags:start], dtype=np.float64)
    out = np.empty(len(series) - start)
    for i in range(len(out)):
        out[i] = predict(window[None, :])[0]
        window = np.append(window[1:], out[i])
    return out
