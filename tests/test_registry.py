"""The registry's rule: only models worth serving are registered, only comparable versions compete
for the champion, registration is safe when several processes register at once, and names a user
chose never break a filter string."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import pytest
from helpers.project import ROOT, STAGE_ENV
from mlflow import MlflowClient

from rnnlm.serving.registry import CHAMPION, RULE, Candidate, register
from rnnlm.tracking import records
from rnnlm.tracking.sync import sync
from rnnlm.tracking.workspace import workspace_models

DATA = "ab" * 32  # a data checksum of the tests' own


def candidate(checksum: int, val_bpc: float = 2.0, data: str = DATA, level: str = "char",
              vocab_size: int = 28, val_ppl: float = 4.0) -> Candidate:
    return Candidate("gru", f"{checksum:064x}", data, level, vocab_size,
                     {"val_ppl": val_ppl, "test_ppl": val_ppl, "val_bpc": val_bpc,
                      "test_bpc": val_bpc}, "a test model")


def fitted_run(uri: str) -> str:
    """The id of a run holding a logged model: the workspace's GRU, recorded by the sync."""
    outcomes = sync(workspace_models())
    return outcomes[0].run_id


def champion(client: MlflowClient, name: str = "rnnlm-gru") -> str:
    return client.get_model_version_by_alias(name, CHAMPION).tags[records.MODEL_TAG]


@pytest.mark.parametrize("figures", [
    {"vocab_size": 1, "val_ppl": 1.0, "val_bpc": 0.0},  # vocab.min_freq huge: one token
    {"val_ppl": 28.0},  # the uniform model's perplexity: no better than a guess
    {"val_bpc": math.inf}, {"val_ppl": math.nan}])
def test_a_model_no_better_than_uniform_or_not_finite_is_never_registered(store, figures
                                                                           ) -> None:
    run_id = fitted_run(store)
    client = MlflowClient(store)
    before = [v.version for v in client.search_model_versions("name = 'rnnlm-gru'")]
    assert register(client, run_id, candidate(7, **figures)) is None
    assert [v.version for v in client.search_model_versions("name = 'rnnlm-gru'")] == before


def test_only_versions_on_the_same_text_and_level_compete_ranked_by_bits_per_character(
        store) -> None:
    run_id = fitted_run(store)
    client = MlflowClient(store)
    assert RULE in client.get_registered_model("rnnlm-gru").description
    register(client, run_id, candidate(1, val_bpc=2.0))
    register(client, run_id, candidate(2, val_bpc=1.9))
    assert champion(client) == f"{2:064x}"  # the group of the last registration: its best
    register(client, run_id, candidate(3, val_bpc=2.5))
    assert champion(client) == f"{2:064x}"
    # A word-level model (its bits per character flattered by <unk>) and a model of other
    # data, registered from a queued experiment: neither takes the alias from another group.
    register(client, run_id, candidate(4, val_bpc=0.5, level="word"), in_workspace=False)
    register(client, run_id, candidate(5, val_bpc=0.1, data="cd" * 32), in_workspace=False)
    assert champion(client) == f"{2:064x}"
    # The workspace moved to the other data (`dvc exp apply`): its group's best is served.
    register(client, run_id, candidate(6, val_bpc=0.7, data="cd" * 32))
    assert champion(client) == f"{5:064x}"


WORKER = """
import sys, time
from pathlib import Path
from mlflow import MlflowClient
from rnnlm.serving.registry import Candidate, register
uri, run_id, folder, rounds, me = sys.argv[1:]
client = MlflowClient(uri)
for r in range(int(rounds)):
    while not (Path(folder) / f"go-{r}").exists():
        time.sleep(0.001)
    bpc = 2.0 - r / 100
    register(client, run_id, Candidate("gru", f"{1000 + r:064x}", "ab" * 32, "char", 28,
             {"val_ppl": 4.0, "test_ppl": 4.0, "val_bpc": bpc, "test_bpc": bpc}, "race"))
    (Path(folder) / f"done-{r}-{me}").touch()
"""


@pytest.mark.slow
def test_three_processes_registering_one_model_on_a_server_make_one_version(
        workspace, tmp_path, monkeypatch, mlflow_server) -> None:
    url, _ = mlflow_server
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    for name in STAGE_ENV:
        monkeypatch.delenv(name, raising=False)
    run_id = fitted_run(url)  # the workspace's models recorded on the server, too
    client = MlflowClient(url)
    env = {**{k: v for k, v in os.environ.items() if k not in STAGE_ENV},
           "PYTHONPATH": str(ROOT / "src")}
    rounds, workers = 4, 3
    processes = [subprocess.Popen([sys.executable, "-c", WORKER, url, run_id, str(tmp_path),
                                   str(rounds), str(i)], env=env, stderr=subprocess.PIPE,
                                  text=True) for i in range(workers)]
    time.sleep(8)  # every worker imported MLflow and waits at the first barrier
    for r in range(rounds):
        (tmp_path / f"go-{r}").touch()
        deadline = time.time() + 120
        while len(list(tmp_path.glob(f"done-{r}-*"))) < workers:
            failed = [p for p in processes if p.poll() not in (None, 0)]
            assert not failed, failed[0].stderr.read() if failed[0].stderr else ""
            assert time.time() < deadline, f"round {r} did not finish"
            time.sleep(0.05)
    for process in processes:
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    for r in range(rounds):
        versions = client.search_model_versions(
            f"tags.{records.MODEL_TAG} = '{1000 + r:064x}'")
        assert len(versions) == 1, [v.version for v in versions]
    assert champion(client) == f"{1000 + rounds - 1:064x}"  # the lowest val_bpc


@pytest.mark.parametrize("name", ["o'neil", 'say "hi"', "back\\slash", "énergie-ü", "a'b\"c"])
def test_names_a_user_chose_never_break_a_filter_string(store, monkeypatch, name) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", name)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", f"team {name}")
    outcomes = sync(workspace_models())
    client = MlflowClient(store)
    registered = f"team {name}-gru"
    assert client.get_model_version_by_alias(registered, CHAMPION).run_id == outcomes[0].run_id
    run = client.get_run(outcomes[0].run_id)
    assert run.data.tags["dvc_exp_name"] == name and "test_ppl" in run.data.metrics
    assert records.find_run(records.MODEL_TAG, run.data.tags[records.MODEL_TAG]) == (
        outcomes[0].run_id)
    assert all(o.version is not None for o in sync(workspace_models()))


SYNC_WORKER = """
import sys, time
from pathlib import Path
from rnnlm.tracking.sync import sync
from rnnlm.tracking.workspace import workspace_models
models = workspace_models()
while not Path(sys.argv[1]).exists():
    time.sleep(0.001)
sync(models)
"""


@pytest.mark.slow
def test_three_syncs_at_once_on_a_new_server_record_one_run_per_model(
        workspace, tmp_path, mlflow_server) -> None:
    """Three teammates' `make repro` against a new team server at the same moment."""
    url, _ = mlflow_server
    env = {**{k: v for k, v in os.environ.items() if k not in STAGE_ENV},
           "PYTHONPATH": str(ROOT / "src"), "MLFLOW_TRACKING_URI": url}
    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", SYNC_WORKER, str(go)], cwd=workspace,
                                  env=env, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    time.sleep(10)  # each has imported torch, Lightning and MLflow
    go.touch()
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read() if process.stderr else ""
    client = MlflowClient(url)
    [experiment] = [e for e in client.search_experiments() if e.name == "rnnlm"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["model_kind"] for r in runs) == ["gru", "ngram"]
    for name in ("rnnlm-gru", "rnnlm-ngram"):
        [version] = client.search_model_versions(f"name = '{name}'")
        assert version.run_id in {r.info.run_id for r in runs}
