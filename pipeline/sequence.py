"""Stage sequence: autoregressive models of a numeric series and their k-step-ahead predictions.

Independent of the text stages. Both models see the same p lagged values: the linear AR(p) fitted
by least squares and the book's small MLP trained with Lightning. They are fitted on the first
`fit` points only; every error is measured on the points after them (`rnnlm.sequence.forecast`).
"""

import mlflow
import numpy as np
import torch

from rnnlm.checksums import array_checksum
from rnnlm.io import atomic_dir, write_json
from rnnlm.layout import SEQUENCE_DIR, SEQUENCE_FIGURE, SEQUENCE_REPORT, metrics_path
from rnnlm.sequence.autoregressive import LinearAR, lagged
from rnnlm.sequence.figure import forecast_figure
from rnnlm.sequence.forecast import fit_points, forecast, held_out_start
from rnnlm.sequence.lag_mlp import LagMLP, fit_lag_mlp
from rnnlm.sequence.series import noisy_sine, read_column
from rnnlm.settings import Params, SequenceParams
from rnnlm.tracking import connection, records

from ._stage import run_stage


def load_series(params: Params) -> tuple[np.ndarray, str]:
    """The series and where it came from."""
    s = params.sequence
    if s.path is None:
        return noisy_sine(s.length, s.frequency, s.noise, s.seed), "synthetic"
    return read_column(s.path, s.column), s.path


def run_params(s: SequenceParams, source: str, points: int, fit: int) -> dict[str, object]:
    out: dict[str, object] = {
        "source": source, "points": points, "fit_points": fit, "lags": s.lags,
        "steps": s.steps, "seed": s.seed, "mlp_hidden": s.mlp.hidden,
        "mlp_epochs": s.mlp.epochs, "mlp_batch_size": s.mlp.batch_size, "mlp_lr": s.mlp.lr,
    }
    if s.path is None:
        out.update(frequency=s.frequency, noise=s.noise)
    return out


def sequence_stage(params: Params) -> None:
    s = params.sequence
    # A store that cannot be used stops the stage before any work.
    connection.connect(connection.experiment_name("sequence"))
    series, source = load_series(params)
    fit = fit_points(s.fit, len(series))
    held_out_start(series, fit, s.lags, max(s.steps))  # too short a series fails before fitting
    linear = LinearAR.fit(series[:fit], s.lags)
    mlp = fit_lag_mlp(*lagged(series[:fit], s.lags), hidden=s.mlp.hidden, epochs=s.mlp.epochs,
                      batch_size=s.mlp.batch_size, lr=s.mlp.lr, seed=s.seed)
    scores = forecast({"linear": linear, "mlp": mlp.predict_windows}, series, fit, s.lags,
                      s.steps)
    report = scores.metrics
    report["linear"].update(linear.as_dict())
    report["mlp"]["train_mse"] = mlp.history[-1]["train_mse"]
    summary = {
        "series": {"source": source, "points": len(series), "fit_points": fit,
                   "held_out_points": len(series) - fit,
                   "k_step_targets": scores.k_step_targets},
        "lags": s.lags, **report,
    }
    experiment = connection.experiment_name("sequence")
    with records.recorded_run("ar", f"ar-p{s.lags}", run_params(s, source, len(series), fit),
                              array_checksum(series), experiment=experiment):
        # Written once the run is open, so that no outputs stand without their run.
        forecast_figure(SEQUENCE_FIGURE, series, fit, scores.one_step, scores.free_run,
                        scores.k_step)
        save_models(linear, mlp)
        write_json(SEQUENCE_REPORT, summary)
        # One column in `dvc metrics show`, a row per model; the rest is in the report.
        for name, metrics in scores.metrics.items():
            write_json(metrics_path(name), {"one_step_mse": metrics["one_step_mse"]})
        mlflow.log_metrics({f"{name}_{key}": value for name, metrics in report.items()
                            for key, value in metrics.items()})
        for row in mlp.history:
            mlflow.log_metric("mlp_epoch_train_mse", row["train_mse"], step=int(row["epoch"]))
        mlflow.log_artifact(str(SEQUENCE_REPORT))
        mlflow.log_artifact(str(SEQUENCE_FIGURE), artifact_path="figures")


def save_models(linear: LinearAR, mlp: LagMLP) -> None:
    """models/sequence: linear.json (the coefficients) and mlp.pt (hyperparameters, weights)."""
    with atomic_dir(SEQUENCE_DIR) as tmp:
        # Strict JSON like every report; in the order as_dict gives (the bytes dvc.lock records).
        write_json(tmp / "linear.json", {"lags": linear.lags, **linear.as_dict()},
                   sort_keys=False)
        torch.save({"hyper_parameters": dict(mlp.hparams), "state_dict": mlp.state_dict()},
                   tmp / "mlp.pt")


if __name__ == "__main__":
    run_stage("sequence", sequence_stage)
