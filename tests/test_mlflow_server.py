"""The stages against a real `mlflow server` on 127.0.0.1, checked through its REST API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import mlflow
import numpy as np
import pytest
from helpers.project import ROOT, STAGE_ENV, params_with
from helpers.servers import free_port
from helpers.stages import TEXT, TINY_MODEL, TINY_TRAIN, prepare_ids

from pipeline.evaluate import evaluate_stage
from pipeline.ngram import ngram_stage
from pipeline.train import train_stage
from rnnlm import layout
from rnnlm.neural.inference import split_perplexity
from rnnlm.text.vocab import Vocab
from rnnlm.tracking import runs


def rest(url: str, endpoint: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{endpoint}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_runs_histories_and_artifacts_land_on_a_tracking_server(tmp_path, monkeypatch,
                                                                 mlflow_server) -> None:
    url, store = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    params = params_with(partition={"batch_size": 4, "num_steps": 10}, model=TINY_MODEL,
                         train={**TINY_TRAIN, "epochs": 3},
                         evaluate={"prefixes": ["the time"], "tokens": 10})
    prepare_ids(TEXT * 30, params)
    ngram_stage(params)
    train_stage(params)
    evaluate_stage(params)

    experiment = rest(url, "experiments/get-by-name?experiment_name=rnnlm")["experiment"]
    found = rest(url, "runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    kinds = sorted({t["key"]: t["value"] for t in r["data"]["tags"]}["model_kind"] for r in found)
    assert kinds == ["gru", "ngram"]
    [train_id] = [r["info"]["run_id"] for r in found
                  if {t["key"]: t["value"] for t in r["data"]["tags"]}["model_kind"] == "gru"]
    history = rest(url, f"metrics/get-history?run_id={train_id}&metric_key=val_ppl")["metrics"]
    assert sorted(m["step"] for m in history) == [1, 2, 3]
    for run in found:
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert "test_ppl" in metrics and run["info"]["status"] == "FINISHED"
    # Artifacts went to the server's artifact store, not to a local folder.
    assert {p.name for p in (store / "artifacts").rglob("*")} >= {
        "train.json", "samples.md", "best.ckpt", "vocab.parquet", "model.json"}
    assert not (work / "mlartifacts").exists() and not (work / "mlruns").exists()
    # A teammate loads the run's MLflow Model from the server and scores exactly what we did.
    mlflow.set_tracking_uri(url)
    served = mlflow.pyfunc.load_model(f"runs:/{train_id}/model").unwrap_python_model().model
    task, vocab = served.model.task, served.vocab
    assert len(vocab) == len(Vocab.load(layout.VOCAB))
    best_val_ppl = json.loads(layout.TRAIN_REPORT.read_text())["best_val_ppl"]
    val = np.load(layout.ids_path("val"))
    assert split_perplexity(task, val) == pytest.approx(best_val_ppl, rel=1e-9)
    table = runs.runs_table()
    assert sorted(table["kind"]) == ["gru", "ngram"] and table["best_val_ppl"].notna().all()


@pytest.mark.slow
def test_make_ui_prints_the_address_of_the_runs_list_and_serves_it(tmp_path) -> None:
    port = free_port()
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a project root, with no store yet
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DVC_ROOT")}
    env["PYTHONPATH"] = str(ROOT / "src")
    process = subprocess.Popen([sys.executable, "-m", "rnnlm.cli", "ui", "--port", str(port)],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        for line, name in zip(lines, ("rnnlm", "rnnlm-sequence"), strict=True):
            found = rest(base, f"experiments/get-by-name?experiment_name={name}")["experiment"]
            # The runs list of that experiment, as a model-training experiment.
            assert line.split(": ", 1)[1].strip() == (
                f"{base}/#/experiments/{found['experiment_id']}/runs"
                "?workflowType=machine_learning")
        assert (tmp_path / "mlflow.db").is_file()  # the project's own store
    finally:
        process.terminate()
        process.wait(timeout=30)


class Started(Exception):
    """In place of os.execve: the command `make ui` would become."""


def test_make_ui_prints_the_runs_lists_and_becomes_a_one_worker_server_on_the_local_store(
        tmp_path, monkeypatch, capsys, empty_store) -> None:
    """What the test above sees over HTTP, in process: the addresses printed, and the command."""
    from rnnlm.cli import ui

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a project root
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")  # its store, still empty
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/not/this.db")  # not read
    for name in STAGE_ENV:
        monkeypatch.delenv(name, raising=False)

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        raise Started(path, argv, env)

    monkeypatch.setattr(os, "execve", execve)
    with pytest.raises(Started) as started:
        ui.main(["--port", "5123"])
    path, argv, env = started.value.args
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert path == sys.executable and argv[1:4] == ["-m", "mlflow", "server"]
    assert argv[argv.index("--backend-store-uri") + 1] == store
    assert argv[argv.index("--workers") + 1] == "1" and "127.0.0.1" in argv and "5123" in argv
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    client = mlflow.MlflowClient(store)
    lines = capsys.readouterr().out.splitlines()
    for line, name in zip(lines, ("rnnlm", "rnnlm-sequence"), strict=True):
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None
        assert line.split(": ", 1)[1] == ui.runs_url("http://127.0.0.1:5123",
                                                      experiment.experiment_id)
    assert ui.runs_url("http://h:1", "7") == "http://h:1/#/experiments/7/runs?workflowType=" \
                                             "machine_learning"
