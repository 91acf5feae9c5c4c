"""Stage sequence: autoregressive models of a numeric series and their k-step-ahead predictions.

Independent of the text stages. Both models see the same p lagged values: the linear AR(p) fitted
by least squares and the book's small MLP trained with Lightning. They are fitted on the first
`fit` points only; every error below is measured on the points after them.
"""

import json
from pathlib import Path

import mlflow
import numpy as np
import torch

from rnnlm import tracking
from rnnlm.autoregressive import LinearAR, Predictor, free_run, k_step, lagged, one_step
from rnnlm.errors import RnnlmError
from rnnlm.forecast_figure import forecast_figure
from rnnlm.io import atomic_dir, write_json
from rnnlm.lag_mlp import LagMLP, fit_lag_mlp
from rnnlm.series import checksum, noisy_sine, read_column

from ._stage import run_stage
from .settings import Params

# Here rather than in paths.py, which every text stage depends on: a change to this stage's
# paths must not rerun them.
SEQUENCE_DIR = Path("models/sequence")
SEQUENCE_REPORT = Path("reports/sequence.json")
SEQUENCE_FIGURE = Path("reports/figures/sequence.png")


def load_series(params: Params) -> tuple[np.ndarray, str]:
    """The series and where it came from."""
    s = params.sequence
    if s.path is None:
        return noisy_sine(s.length, s.frequency, s.noise, s.seed), "synthetic"
    return read_column(s.path, s.column), s.path


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


def sequence_stage(params: Params) -> None:
    s = params.sequence
    tracking.connect()  # a store that cannot be used stops the stage before any work
    series, source = load_series(params)
    fit = fit_points(s.fit, len(series))
    start = held_out_start(series, fit, s.lags, max(s.steps))
    windows, targets = lagged(series[:fit], s.lags)

    linear = LinearAR.fit(series[:fit], s.lags)
    mlp = fit_lag_mlp(windows, targets, hidden=s.mlp.hidden, epochs=s.mlp.epochs,
                      batch_size=s.mlp.batch_size, lr=s.mlp.lr, seed=s.seed)
    models: dict[str, Predictor] = {"linear": linear, "mlp": mlp.predict_windows}

    # Targets as 0-based indices into the series; the figure's time axis is t = index + 1.
    drawn = np.arange(s.lags + max(s.steps) - 1, len(series))  # every k-step target, as the book
    scored = drawn >= start
    report: dict[str, dict[str, float]] = {}
    one_step_drawn, free_run_drawn, k_step_drawn = {}, {}, {}
    for name, predict in models.items():
        one = one_step(predict, series, s.lags)  # targets lags..T-1
        free = free_run(predict, series, s.lags, fit)
        metrics = {"fit_mse": mse(one[: fit - s.lags], series[s.lags:fit]),
                   "one_step_mse": mse(one[fit - s.lags:], series[fit:]),
                   "free_run_mse": mse(free, series[fit:])}
        k_step_drawn[name] = {}
        for k in s.steps:
            predicted = k_step(predict, series, s.lags, k, drawn)
            metrics[f"mse_k{k}"] = mse(predicted[scored], series[drawn[scored]])
            k_step_drawn[name][k] = (drawn + 1, predicted)
        one_step_drawn[name] = (np.arange(s.lags, len(series)) + 1, one)
        free_run_drawn[name] = (np.arange(fit, len(series)) + 1, free)
        report[name] = metrics
    report["linear"].update(linear.as_dict())
    report["mlp"]["train_mse"] = mlp.history[-1]["train_mse"]

    summary = {
        "series": {"source": source, "points": len(series), "fit_points": fit,
                   "held_out_points": len(series) - fit,
                   "k_step_targets": int(scored.sum())},
        "lags": s.lags, **report,
    }
    run_params: dict[str, object] = {
        "source": source, "points": len(series), "fit_points": fit, "lags": s.lags,
        "steps": s.steps, "seed": s.seed, "mlp_hidden": s.mlp.hidden,
        "mlp_epochs": s.mlp.epochs, "mlp_batch_size": s.mlp.batch_size, "mlp_lr": s.mlp.lr,
    }
    if s.path is None:
        run_params.update(frequency=s.frequency, noise=s.noise)
    with tracking.recorded_run("ar", f"ar-p{s.lags}", run_params, checksum(series)) as run:
        # Written once the run is open, so outputs and run id always belong together.
        forecast_figure(SEQUENCE_FIGURE, series, fit, one_step_drawn, free_run_drawn,
                        k_step_drawn)
        save_models(linear, mlp)
        write_json(SEQUENCE_REPORT, {**summary, "mlflow_run_id": run.info.run_id})
        mlflow.log_metrics({f"{name}_{key}": value for name, metrics in report.items()
                            for key, value in metrics.items()})
        for row in mlp.history:
            mlflow.log_metric("mlp_epoch_train_mse", row["train_mse"], step=int(row["epoch"]))
        mlflow.log_artifact(str(SEQUENCE_REPORT))
        mlflow.log_artifact(str(SEQUENCE_FIGURE), artifact_path="figures")


def save_models(linear: LinearAR, mlp: LagMLP) -> None:
    """models/sequence: linear.json (the coefficients) and mlp.pt (hyperparameters, weights)."""
    with atomic_dir(SEQUENCE_DIR) as tmp:
        (tmp / "linear.json").write_text(
            json.dumps({"lags": linear.lags, **linear.as_dict()}, indent=2) + "\n",
            encoding="utf-8")
        torch.save({"hyper_parameters": dict(mlp.hparams), "state_dict": mlp.state_dict()},
                   tmp / "mlp.pt")


if __name__ == "__main__":
    run_stage("sequence", sequence_stage)
