"""The MLflow store as a view of the workspace: `rnnlm sync` records what a store
lacks (an emptied store, a new server, a clone), registers under the champion rule, changes
nothing the second time, and names a damaged store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from helpers.metrics import model_metrics
from helpers.project import ROOT
from helpers.project import STAGE_ENV as ENV
from mlflow import MlflowClient

from rnnlm import layout
from rnnlm.errors import RnnlmError
from rnnlm.serving.registry import CHAMPION
from rnnlm.tracking import connection, records
from rnnlm.tracking.sync import RECORDED_BY_TAG, sync
from rnnlm.tracking.workspace import workspace_models


def project_runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("rnnlm")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def snapshot(uri: str) -> dict:
    """Everything the sync could write: runs (tags, params, metrics with their histories,
    artifacts, logged models), registered models, versions (tags), aliases."""
    client = MlflowClient(uri)
    out: dict = {"runs": {}, "models": {}}
    for run in project_runs(uri):
        run_id = run.info.run_id
        out["runs"][run_id] = {
            "status": run.info.status, "tags": run.data.tags, "params": run.data.params,
            "history": {key: [(m.step, m.value, m.timestamp)
                              for m in client.get_metric_history(run_id, key)]
                        for key in run.data.metrics},
            "artifacts": sorted(a.path for a in client.list_artifacts(run_id)),
            "models": [o.model_id for o in run.outputs.model_outputs],
        }
    for model in client.search_registered_models():
        out["models"][model.name] = {
            "description": model.description, "aliases": model.aliases,
            "updated": model.last_updated_timestamp,
            "versions": {v.version: (v.tags, v.last_updated_timestamp) for v in
                         client.search_model_versions(f"name = '{model.name}'")}}
    return out


def test_an_empty_store_gets_each_model_its_run_version_and_champion(store) -> None:
    metrics = model_metrics()
    history = layout.TRAIN_METRICS.read_text().splitlines()[1:]
    sync(workspace_models())

    client = MlflowClient(store)
    runs = {r.data.tags["model_kind"]: r for r in project_runs(store)}
    assert set(runs) == {"gru", "ngram"}
    for kind, role in (("gru", "rnn"), ("ngram", "ngram")):
        run = runs[kind]
        assert run.info.status == "FINISHED" and run.data.tags[RECORDED_BY_TAG] == "sync"
        for key in ("test_ppl", "val_bpc", "test_bpc"):
            assert run.data.metrics[key] == metrics[role][key]
        assert run.data.metrics["best_val_ppl"] == metrics[role]["val_ppl"]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "samples.md" in artifacts and len(run.outputs.model_outputs) == 1
        version = client.get_model_version_by_alias(f"rnnlm-{kind}", CHAMPION)
        assert version.run_id == run.info.run_id
        assert float(version.tags["val_bpc"]) == metrics[role]["val_bpc"]
        assert run.inputs.dataset_inputs  # the UI's Dataset column
    gru = runs["gru"]
    assert gru.data.params["hidden"] == "16" and gru.data.params["model_kind"] == "gru"
    val = client.get_metric_history(gru.info.run_id, "val_ppl")
    assert [m.step for m in sorted(val, key=lambda m: m.step)] == list(
        range(1, len(history) + 1))
    assert {"train.json", "train_metrics.csv", "train_curves.png"} <= {
        a.path for a in client.list_artifacts(gru.info.run_id)}
    assert runs["ngram"].data.metrics["unigram_test_ppl"] > metrics["ngram"]["test_ppl"]
    # `train.resume: true` on a pulled last.ckpt finds this run to continue.
    assert records.find_run("last_checkpoint", gru.data.tags["last_checkpoint"]) == (
        gru.info.run_id)


def test_a_locked_store_is_not_called_damaged(tmp_path) -> None:
    """Moving a store aside because another process holds its lock would lose it."""
    import sqlite3

    from rnnlm.tracking.health import check_sqlite_store

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        check_sqlite_store(f"sqlite:///{path}")  # no error: MLflow reports the lock itself
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_second_sync_changes_nothing(store) -> None:
    sync(workspace_models())
    before = snapshot(store)
    outcomes = sync(workspace_models())
    assert snapshot(store) == before
    assert not any(o.recorded or o.changed for o in outcomes)


def test_the_evaluate_stage_s_run_is_completed_not_duplicated(store, workspace, monkeypatch
                                                              ) -> None:
    """The store the stages wrote to: every run is there already; after a kill between the
    two registrations (here: the n-gram's registered model removed) the sync adds what is
    missing and nothing else."""
    uri = f"sqlite:///{workspace / 'first.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    before = {r.info.run_id for r in project_runs(uri)}
    MlflowClient(uri).delete_registered_model("rnnlm-ngram")
    outcomes = sync(workspace_models())
    assert {r.info.run_id for r in project_runs(uri)} == before
    assert not any(o.recorded for o in outcomes)
    assert MlflowClient(uri).get_model_version_by_alias("rnnlm-ngram", CHAMPION).version in (1, "1")


def test_a_model_evaluate_has_not_scored_is_recorded_but_not_registered(store, tmp_path
                                                                        ) -> None:
    """evaluate killed after a new training: reports/evaluation.json still describes the
    previous model, whose figures must not be given to this one."""
    saved = layout.EVALUATION.read_bytes()
    try:
        evaluation = json.loads(saved)
        evaluation["rnn"]["model_checksum"] = "0" * 64
        layout.EVALUATION.write_text(json.dumps(evaluation))
        [rnn, ngram] = sync(workspace_models())
    finally:
        layout.EVALUATION.write_bytes(saved)
    assert rnn.recorded and rnn.version is None and ngram.version is not None
    [run] = [r for r in project_runs(store) if r.data.tags["model_kind"] == "gru"]
    assert "test_ppl" not in run.data.metrics
    assert not MlflowClient(store).search_registered_models(filter_string="name = 'rnnlm-gru'")


@pytest.mark.slow
def test_the_command_line_sync_and_the_served_champion(store, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env["PYTHONPATH"] = str(ROOT / "src")
    sync_cmd = [sys.executable, "-m", "rnnlm.cli", "sync"]
    first = subprocess.run(sync_cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "recorded from the repository; rnnlm-gru version 1 (champion)" in first.stdout
    again = subprocess.run(sync_cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count(" in line;") == 2, again.stdout
    mlflow.set_tracking_uri(store)
    model = mlflow.pyfunc.load_model(f"models:/rnnlm-gru@{CHAMPION}")
    scored = model.predict(__import__("pandas").DataFrame({"text": ["the time traveller"]}))
    assert scored["perplexity"][0] > 1


@pytest.mark.slow
def test_a_damaged_store_is_one_line_naming_it_and_the_sync_rebuilds_it(store, tmp_path
                                                                        ) -> None:
    sync(workspace_models())
    path = Path(store.removeprefix("sqlite:///"))
    with path.open("r+b") as f:
        f.truncate(200_000 if path.stat().st_size > 200_000 else path.stat().st_size // 2)
    connection._swept.discard(store)
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env["PYTHONPATH"] = str(ROOT / "src")
    for command in ("runs", "sync"):
        result = subprocess.run([sys.executable, "-m", "rnnlm.cli", command], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert "is damaged" in line and f"mv {path} {path}.damaged" in line, line
    with pytest.raises(RnnlmError, match="is damaged"):
        connection.connect()
    shutil.move(path, f"{path}.damaged")  # what the message says, then the sync, as a user would
    rebuilt = subprocess.run([sys.executable, "-m", "rnnlm.cli", "sync"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr
    # (Checked through the command's report: this process's MLflow keeps the moved file open.)
    assert "recorded from the repository; rnnlm-gru version 1 (champion)" in rebuilt.stdout


def test_the_sync_command_records_the_models_then_finds_the_store_in_line(store, capsys,
                                                                         monkeypatch) -> None:
    """`rnnlm sync` in process, twice (its subprocess test is slow)."""
    from rnnlm.cli import main

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the command names itself in argv[0]

    main(["sync"])
    assert "recorded from the repository; rnnlm-gru version 1 (champion)" in (
        capsys.readouterr().out)
    main(["sync"])
    assert capsys.readouterr().out.count(" in line;") == 2


def test_a_damaged_store_file_is_named_with_the_fix_before_mlflow_opens_it(
        tmp_path, empty_store) -> None:
    from rnnlm.tracking.health import check_sqlite_store

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database, " * 1_000)
    truncated = tmp_path / "truncated.db"
    truncated.write_bytes(empty_store.read_bytes()[: empty_store.stat().st_size // 2])
    for path in (garbage, truncated):
        with pytest.raises(RnnlmError, match="is damaged") as err:
            check_sqlite_store(f"sqlite:///{path}")
        assert f"mv {path} {path}.damaged" in str(err.value)
        assert "rnnlm sync" in str(err.value)
    (tmp_path / "empty.db").touch()
    for fine in (f"sqlite:///{empty_store}", f"sqlite:///{tmp_path / 'missing.db'}",
                 f"sqlite:///{tmp_path / 'empty.db'}", "http://127.0.0.1:5000"):
        check_sqlite_store(fine)  # sound, missing or empty (MLflow creates it), or not SQLite
