"""Autoregressive models of a numeric series: fitting, fed-back predictions, the sequence stage."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.project import committed_params
from mlflow import MlflowClient
from mlflow.entities import Run

from pipeline.sequence import (
    SEQUENCE_DIR,
    SEQUENCE_FIGURE,
    SEQUENCE_REPORT,
    fit_points,
    load_series,
    sequence_stage,
)
from rnnlm.errors import RnnlmError
from rnnlm.sequence.autoregressive import LinearAR, free_run, k_step, lagged, one_step
from rnnlm.sequence.lag_mlp import fit_lag_mlp
from rnnlm.sequence.series import noisy_sine, read_column
from rnnlm.settings import Params, parse_params


def sequence_run(client: MlflowClient) -> Run:
    """The newest run of the test's sequence experiment."""
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"] + "-sequence")
    assert experiment is not None
    return client.search_runs([experiment.experiment_id],
                              order_by=["attributes.start_time DESC"])[0]


def sequence_params(**changes: object) -> Params:
    raw = committed_params()
    raw["sequence"].update(changes)
    return parse_params(raw)


def ar_process(phi0: float, phi: list[float], noise: float, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(length + 100)  # the first 100 points let the start-up transient die out
    for t in range(len(phi), len(x)):
        x[t] = phi0 + sum(p * x[t - 1 - j] for j, p in enumerate(phi)) + rng.normal(0, noise)
    return x[100:]


def test_least_squares_recovers_the_coefficients_of_an_ar2_process() -> None:
    series = ar_process(0.3, [0.6, -0.25], noise=0.05, length=50_000, seed=1)
    model = LinearAR.fit(series, 2)
    # Standard error of each phi here is about sqrt((1 - 0.25^2) / n) = 0.004.
    assert model.phi == pytest.approx([0.6, -0.25], abs=0.02)
    assert model.intercept == pytest.approx(0.3, abs=0.02)
    assert model.as_dict()["phi1"] == model.phi[0]


def test_a_noiseless_linear_recurrence_is_fitted_exactly_and_predicted_exactly() -> None:
    # x_t = 1 + 0.5 x_{t-1} + 0.3 x_{t-2}, from two arbitrary starting values.
    x = [2.0, -1.0]
    for _ in range(30):
        x.append(1 + 0.5 * x[-1] + 0.3 * x[-2])
    series = np.array(x)
    model = LinearAR.fit(series[:12], 2)
    assert model.intercept == pytest.approx(1.0) and model.phi == pytest.approx([0.5, 0.3])
    targets = np.arange(20, 32)
    for k in (1, 5, 12):
        assert k_step(model, series, 2, k, targets) == pytest.approx(series[targets])
    assert free_run(model, series, 2, 12) == pytest.approx(series[12:])


def test_k_step_feeds_predictions_back_exactly_as_a_step_by_step_loop() -> None:
    series = noisy_sine(120, 0.05, 0.1, seed=3)
    model = LinearAR.fit(series[:80], 3)
    targets = np.arange(90, 120)
    for k in (1, 2, 7):
        expected = []
        for t in targets:
            window = list(series[t - k - 2 : t - k + 1])
            for _ in range(k):
                window.append(model.intercept + sum(
                    p * window[-1 - j] for j, p in enumerate(model.phi)))
            expected.append(window[-1])
        assert k_step(model, series, 3, k, targets) == pytest.approx(expected, rel=1e-12)
    assert k_step(model, series, 3, 1, targets) == pytest.approx(
        one_step(model, series, 3)[targets - 3], rel=1e-12)
    # Fed back from t = 80 on, the prediction of x_{80+j} is a (j+1)-step prediction.
    fed = free_run(model, series, 3, 80)
    for j in (0, 4, 20):
        assert fed[j] == pytest.approx(k_step(model, series, 3, j + 1, np.array([80 + j]))[0])


def test_too_few_points_for_the_lags_is_a_clear_error() -> None:
    with pytest.raises(RnnlmError, match=r"8 points are too few to fit an AR\(4\) model: .* "
                                         r"at least 9 points"):
        LinearAR.fit(np.arange(8.0), 4)
    windows, targets = lagged(np.arange(9.0), 4)  # just enough: 5 equations, 5 unknowns
    assert windows.shape == (5, 4) and targets.tolist() == [4, 5, 6, 7, 8]
    with pytest.raises(RnnlmError, match="fewer than 6 points before it for a 3-step"):
        k_step(LinearAR(0.0, np.ones(4)), np.arange(20.0), 4, 3, np.array([5, 10]))


def test_the_mlp_is_reproducible_from_its_seed() -> None:
    windows, targets = lagged(noisy_sine(200, 0.01, 0.2, seed=0), 4)

    def weights(seed: int) -> list[torch.Tensor]:
        net = fit_lag_mlp(windows, targets, hidden=8, epochs=2, batch_size=16, lr=0.01,
                          seed=seed)
        return list(net.state_dict().values())

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_a_series_is_read_from_a_named_or_the_only_numeric_column(tmp_path) -> None:
    frame = pd.DataFrame({"day": ["mon", "tue", "wed"], "level": [1.5, 2.0, 2.5],
                          "count": [3, 4, 5]})
    frame.to_csv(tmp_path / "two.csv", index=False)
    frame[["day", "level"]].to_parquet(tmp_path / "one.parquet")
    assert read_column(tmp_path / "two.csv", "count").tolist() == [3.0, 4.0, 5.0]
    assert read_column(tmp_path / "one.parquet").tolist() == [1.5, 2.0, 2.5]
    with pytest.raises(RnnlmError, match=r"2 numeric columns \(level, count\): name one"):
        read_column(tmp_path / "two.csv")
    with pytest.raises(RnnlmError, match="no column 'levle'; its columns are day, level, count"):
        read_column(tmp_path / "two.csv", "levle")
    with pytest.raises(RnnlmError, match=r"column 'day' .* is not numeric"):
        read_column(tmp_path / "two.csv", "day")
    pd.DataFrame({"level": [1.0, None, 2.0]}).to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(RnnlmError, match="1 missing or infinite values \\(first at row 1\\)"):
        read_column(tmp_path / "gap.csv")
    with pytest.raises(RnnlmError, match=r"use a \.csv or \.parquet file"):
        read_column(tmp_path / "series.xlsx")


@pytest.mark.parametrize(("change", "message"), [
    ({"fit": 0}, "sequence.fit must be a count"),
    ({"fit": 1.5}, "sequence.fit must be a count"),
    ({"steps": [1, 4, 4]}, "sequence.steps has duplicates"),
    ({"column": "value"}, "set the path too"),
    ({"lags": 0}, "sequence.lags"),
])
def test_bad_sequence_params_are_named(change, message) -> None:
    with pytest.raises(RnnlmError, match=message):
        sequence_params(**change)


def test_sequence_stage_reports_errors_growing_with_k_and_one_mlflow_run(
        tmp_path, monkeypatch, mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    sequence_stage(sequence_params())
    report = json.loads(SEQUENCE_REPORT.read_text())
    assert report["series"] == {"source": "synthetic", "points": 1000, "fit_points": 600,
                                "held_out_points": 400, "k_step_targets": 400}
    for name in ("linear", "mlp"):
        errors = [report[name][f"mse_k{k}"] for k in (1, 4, 16, 64)]
        assert errors == sorted(errors) and errors[-1] > 2 * errors[0], (name, errors)
        assert report[name]["mse_k1"] == pytest.approx(report[name]["one_step_mse"], rel=1e-9)
        # One step ahead, both models come close to the noise's variance, 0.2^2.
        assert 0.035 < report[name]["one_step_mse"] < 0.07
    assert {"phi0", "phi1", "phi2", "phi3", "phi4"} <= set(report["linear"])
    assert SEQUENCE_FIGURE.stat().st_size > 10_000
    saved = json.loads((SEQUENCE_DIR / "linear.json").read_text())
    assert saved["lags"] == 4 and saved["phi1"] == report["linear"]["phi1"]
    assert set(torch.load(SEQUENCE_DIR / "mlp.pt", weights_only=True)) == {
        "hyper_parameters", "state_dict"}

    client = MlflowClient(mlflow_store)
    run = sequence_run(client)  # in an experiment of its own, beside the language models'
    assert run.info.status == "FINISHED" and run.data.tags["model_kind"] == "ar"
    assert run.data.params["lags"] == "4" and run.data.params["steps"] == "1,4,16,64"
    assert run.data.metrics["linear_mse_k64"] == report["linear"]["mse_k64"]
    assert run.data.metrics["mlp_one_step_mse"] == report["mlp"]["one_step_mse"]
    history = client.get_metric_history(run.info.run_id, "mlp_epoch_train_mse")
    assert [m.step for m in history] == [1, 2, 3, 4, 5]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"sequence.json", "figures"} <= artifacts

    # Same parameters and seed, same numbers.
    sequence_stage(sequence_params())
    assert json.loads(SEQUENCE_REPORT.read_text()) == report
    assert sequence_run(client).info.run_id != run.info.run_id  # a run of its own


def test_nothing_after_the_fitted_points_reaches_the_models(tmp_path, monkeypatch,
                                                           mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = sequence_params(fit=300, length=500, steps=[1, 8])
    sequence_stage(params)
    report = json.loads(SEQUENCE_REPORT.read_text())
    linear = (SEQUENCE_DIR / "linear.json").read_text()
    mlp = torch.load(SEQUENCE_DIR / "mlp.pt", weights_only=True)["state_dict"]

    # The same first 300 points, then something else entirely: the same fitted models.
    series, _ = load_series(params)
    changed = np.concatenate([series[:300], np.full(200, 5.0)])
    pd.DataFrame({"x": changed}).to_csv("changed.csv", index=False)
    sequence_stage(sequence_params(path="changed.csv", fit=300, steps=[1, 8]))
    assert (SEQUENCE_DIR / "linear.json").read_text() == linear
    again = torch.load(SEQUENCE_DIR / "mlp.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(mlp[key], again[key]) for key in mlp)

    # fit_mse is the least-squares residual: the mean squared error the fit minimised.
    windows, targets = lagged(series[:300], 4)
    residual = targets - LinearAR.fit(series[:300], 4)(windows)
    assert report["linear"]["fit_mse"] == pytest.approx(np.mean(residual**2), rel=1e-12)


def test_a_fraction_of_the_series_is_rounded_to_points() -> None:
    assert fit_points(0.29, 100) == 29  # 0.29 * 100 is 28.999999999999996
    assert fit_points(0.6, 1000) == 600 and fit_points(600, 1000) == 600


def test_sequence_stage_on_a_column_of_the_users_csv(tmp_path, monkeypatch,
                                                     mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    values = ar_process(0.1, [0.8], noise=0.1, length=300, seed=2)
    pd.DataFrame({"when": range(300), "level": values}).to_csv("mine.csv", index=False)
    sequence_stage(sequence_params(path="mine.csv", column="level", fit=0.7, lags=1,
                                   steps=[1, 8]))
    report = json.loads(SEQUENCE_REPORT.read_text())
    assert report["series"]["source"] == "mine.csv"
    assert report["series"]["fit_points"] == 210 and report["series"]["k_step_targets"] == 90
    assert report["linear"]["phi1"] == pytest.approx(0.8, abs=0.1)
    run = sequence_run(MlflowClient(mlflow_store))
    assert "noise" not in run.data.params and run.data.params["source"] == "mine.csv"


@pytest.mark.parametrize(("change", "message"), [
    ({"fit": 8}, r"8 points are too few to fit an AR\(4\) model"),
    ({"fit": 1000}, "asks for 1000 points to fit on, but the series has 1000"),
    ({"length": 50, "fit": 20}, r"a 64-step prediction with 4 lags needs 67 points"),
])
def test_sequence_stage_stops_before_writing_anything(tmp_path, monkeypatch, mlflow_store,
                                                      change, message) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RnnlmError, match=message):
        sequence_stage(sequence_params(**change))
    assert not SEQUENCE_REPORT.exists() and not SEQUENCE_DIR.exists()
    assert not SEQUENCE_FIGURE.exists()


PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}
IMPORT_PIPELINE = """
import json, os, sys
import pipeline
print(json.dumps({"env": {name: os.environ.get(name) for name in sys.argv[1:]},
                  "loaded": [m for m in ("numpy", "torch", "scipy") if m in sys.modules]}))
"""


def import_pipeline(**preset: str) -> dict:
    """What a fresh process that imports `pipeline` first sees: the pins, and the numerical
    libraries already loaded by then."""
    env = {k: v for k, v in os.environ.items() if k not in PINS}
    result = subprocess.run([sys.executable, "-c", IMPORT_PIPELINE, *PINS], check=True,
                            env={**env, **preset}, capture_output=True, text=True)
    return json.loads(result.stdout)


def test_importing_pipeline_pins_the_cpu_code_paths_before_any_numerical_library_loads() -> None:
    """numpy's OpenBLAS, MKL and PyTorch pick their kernels by the CPU when they load, and the
    kernels round differently (the 15th digit of the sequence stage's coefficients differed
    between two machines): the project's rule is that importing `pipeline` sets each library's
    variable to the AVX2 path before any of them loads, and a value already set wins."""
    assert import_pipeline() == {"env": PINS, "loaded": []}
    chosen = import_pipeline(OPENBLAS_CORETYPE="SkylakeX", MKL_CBWR="AUTO")
    assert chosen["env"] == {**PINS, "OPENBLAS_CORETYPE": "SkylakeX", "MKL_CBWR": "AUTO"}
