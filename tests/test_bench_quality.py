"""`bench/quality_of_run.py`: a finished or stopped training's quality over time, read from a real
MLflow store the way `bench/bench_quality.py` reads its own runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag

BENCH = Path(__file__).resolve().parents[1] / "bench"


def log_run(client: MlflowClient, stage: str, start_ms: int, val: list[float],
            status: str = "FINISHED", test_ppl: float | None = None) -> None:
    """A run of `stage` that started at start_ms and logged one val_ppl (and train_ppl) a minute."""
    experiment = client.get_experiment_by_name("Default")
    assert experiment is not None
    run = client.create_run(experiment.experiment_id, start_time=start_ms,
                            tags={"dvc_stage": stage})
    metrics = [Metric(key, value * scale, start_ms + 60_000 * epoch, epoch)
               for epoch, value in enumerate(val, start=1)
               for key, scale in (("val_ppl", 1.0), ("train_ppl", 0.9))]
    if test_ppl is not None:
        metrics.append(Metric("test_ppl", test_ppl, start_ms + 60_000 * len(val), 0))
    client.log_batch(run.info.run_id, metrics=metrics, tags=[RunTag("mlflow.runName", stage)])
    client.set_terminated(run.info.run_id, status=status)


def read(store: Path, out: Path, *options: str) -> dict:
    subprocess.run([sys.executable, str(BENCH / "quality_of_run.py"), str(store), "run",
                    "--out", str(out), *options], check=True, capture_output=True, cwd=BENCH)
    return json.loads(out.read_text())


@pytest.fixture
def mlflow_db(empty_store: Path, tmp_path: Path) -> Path:
    path = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store, path)
    return path


def test_the_train_stages_run_is_read_in_seconds_from_its_start_or_from_a_given_time(
        mlflow_db: Path, tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{mlflow_db}")
    start = 1_800_000_000_000
    log_run(client, "train", start, [5.0, 4.2, 3.9], test_ppl=4.4)
    # A later stage's run (as the sequence stage's after an exp run's training): not read.
    log_run(client, "sequence", start + 600_000, [9.0, 8.0])

    out = tmp_path / "results.json"
    entry = read(mlflow_db, out, "--thresholds", "4.5", "4.0", "3.0",
                 "--overrides", "train.lr=0.004", "--note", "a fresh clone")["run"]
    assert entry["curve"] == [[60.0, 5.0], [120.0, 4.2], [180.0, 3.9]]
    assert entry["train_ppl"] == pytest.approx([4.5, 3.78, 3.51])
    assert entry["seconds_to"] == {"4.5": 120.0, "4.0": 180.0, "3.0": None}
    assert entry["best_val_ppl"] == 3.9 and entry["epochs_done"] == 3
    assert entry["finished"] is True and entry["test_ppl"] == 4.4
    assert entry["overrides"] == ["train.lr=0.004"] and entry["note"] == "a fresh clone"

    # Counted from 30 s before the run started (the whole exp run), into the same file: the
    # entry is replaced, the file's other entries kept.
    out.write_text(json.dumps({"other": {"curve": []}, "run": {"curve": []}}))
    results = read(mlflow_db, out, "--started", str(start / 1000 - 30))
    assert results["run"]["curve"] == [[90.0, 5.0], [150.0, 4.2], [210.0, 3.9]]
    assert results["other"] == {"curve": []}


def test_a_training_stopped_by_hand_is_not_finished(mlflow_db: Path, tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{mlflow_db}")
    log_run(client, "train", 1_800_000_000_000, [5.0, 4.6], status="FAILED")
    entry = read(mlflow_db, tmp_path / "results.json")["run"]
    assert entry["finished"] is False and entry["epochs_done"] == 2
    assert "test_ppl" not in entry


def test_a_store_without_a_train_run_is_refused_by_name(mlflow_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(BENCH / "quality_of_run.py"), str(mlflow_db), "run",
                           "--out", str(out)], capture_output=True, text=True, cwd=BENCH)
    assert done.returncode != 0
    assert "holds no run of the train stage" in done.stderr
    assert not out.exists()
