"""Where runs go: the project's one store, from the repository and from DVC's temporary copies."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from rnnlm.checksums import files_checksum
from rnnlm.errors import RnnlmError
from rnnlm.tracking import connection, records


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DVC_ROOT", "DVC_EXP_NAME",
                 "DVC_STAGE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_default_store_is_sqlite_in_the_project_root(tmp_path: Path, clean_env) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "pipeline").mkdir()
    clean_env.chdir(tmp_path / "pipeline")
    assert connection.tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    assert connection.artifact_location(connection.tracking_uri()) == (
        (tmp_path / "mlartifacts").as_uri())


def test_a_dvc_experiment_copy_uses_the_main_repository_store(tmp_path: Path, clean_env) -> None:
    workspace = tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc123"
    (workspace / ".dvc").mkdir(parents=True)
    clean_env.chdir(workspace)
    assert connection.project_root() == tmp_path  # from the path alone
    clean_env.setenv("DVC_ROOT", str(tmp_path / "elsewhere"))  # what DVC passes wins
    assert connection.tracking_uri() == f"sqlite:///{tmp_path}/elsewhere/mlflow.db"


def test_the_environment_overrides_the_store(tmp_path: Path, clean_env) -> None:
    clean_env.setenv("DVC_ROOT", str(tmp_path))
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert connection.tracking_uri() == "http://127.0.0.1:5000"
    assert connection.artifact_location("http://127.0.0.1:5000") is None  # the server decides
    clean_env.setenv("MLFLOW_TRACKING_URI", "sqlite:///runs/team.db")  # relative: to the root
    assert connection.tracking_uri() == f"sqlite:///{tmp_path}/runs/team.db"
    assert connection.artifact_location(connection.tracking_uri()) == (
        (tmp_path / "runs" / "mlartifacts").as_uri())


def test_runs_carry_tags_params_and_fail_cleanly(mlflow_store: str, monkeypatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "sunny-day")
    with records.recorded_run("ngram", "ngram-test", {"order": 3, "eps": [1.0, 0.5]},
                               "abc") as run:
        mlflow.log_metric("val_ppl", 6.2)
    with pytest.raises(ZeroDivisionError), records.recorded_run("ngram", "boom", {}, "abc"):
        1 / 0  # noqa: B018
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(connection.experiment_name())
    assert experiment.artifact_location.startswith("file:///")  # absolute, not ./mlruns
    done = client.get_run(run.info.run_id)
    assert done.info.status == "FINISHED"
    assert done.data.params == {"order": "3", "eps": "1,0.5"}
    assert done.data.tags["model_kind"] == "ngram"
    assert done.data.tags["data_checksum"] == "abc"
    assert done.data.tags["dvc_exp_name"] == "sunny-day"
    assert done.data.tags["mlflow.runName"] == "ngram-test (sunny-day)"
    failed = [r for r in client.search_runs([experiment.experiment_id])
              if r.info.run_name.startswith("boom")]
    assert [r.info.status for r in failed] == ["FAILED"]
    assert connection.ensure_experiment(mlflow_store, experiment.name) == experiment.experiment_id


def test_data_checksum_depends_on_content_and_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"one")
    b.write_bytes(b"two")
    assert files_checksum([a, b]) != files_checksum([b, a])
    assert files_checksum([a, b]) == files_checksum([a, b])


def test_an_unusable_store_is_a_clear_error(tmp_path: Path, clean_env) -> None:
    clean_env.setenv("MLFLOW_TRACKING_URI", f"file://{tmp_path}/mlruns")  # refused by MLflow 3
    with pytest.raises(RnnlmError, match=r"(?s)cannot use the MLflow store 'file://.*Fix: unset"):
        connection.connect()
