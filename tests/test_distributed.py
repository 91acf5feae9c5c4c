"""Data-parallel training: sharded minibatches, and the train stage on two CPU processes (gloo).

Lightning starts the second process by running the stage's command again, so the stage runs
here as a subprocess (`python -m pipeline.train`), as DVC runs it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.project import ROOT, committed_params, params_with
from helpers.stages import TEXT, TINY_MODEL, prepare_ids
from mlflow import MlflowClient

from pipeline.train import train_stage
from rnnlm import layout
from rnnlm.errors import RnnlmError
from rnnlm.neural.batches import BatchSampler
from rnnlm.neural.inference import load_task, split_perplexity


@pytest.mark.parametrize("scheme", ["sequential", "random"])
def test_ranks_share_each_minibatch_without_overlap_and_in_step(scheme) -> None:
    ids = np.arange(2_000)
    whole = BatchSampler(ids, batch_size=6, num_steps=7, scheme=scheme, seed=3)
    shards = [whole.shard(rank, 3) for rank in range(3)]
    for epoch in (0, 1):
        expected = list(whole.epoch(epoch))
        per_rank = [list(shard.epoch(epoch)) for shard in shards]
        assert all(len(batches) == len(expected) for batches in per_rank)  # in step
        for i, (inputs, labels) in enumerate(expected):
            # Rank r holds rows 2r and 2r+1: stacked in rank order they are the whole minibatch.
            assert np.array_equal(np.vstack([batches[i][0] for batches in per_rank]), inputs)
            assert np.array_equal(np.vstack([batches[i][1] for batches in per_rank]), labels)
    if scheme == "sequential":
        # Each rank's rows continue across minibatches: it can carry its own state.
        first, second = list(shards[1].epoch(0))[:2]
        assert np.array_equal(first[0][:, -1] + 1, second[0][:, 0])


def test_a_batch_size_that_does_not_split_over_the_processes_is_refused() -> None:
    with pytest.raises(RnnlmError, match=r"batch_size=6 does not split evenly over 4 training "
                                         r"processes: make it a multiple of 4"):
        BatchSampler(np.arange(2_000), 6, 7).shard(0, 4)


def ddp_params(tmp_path: Path, **train: object) -> dict:
    raw = committed_params()
    raw["partition"].update(batch_size=4, num_steps=10)
    raw["model"].update(TINY_MODEL, dropout=0.0)  # no dropout: runs compare number for number
    raw["train"].update(epochs=2, accelerator="cpu", devices=2, strategy="ddp", **train)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return raw


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_records_one_run_and_scores_val_exactly(
        tmp_path, monkeypatch, mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    raw = ddp_params(tmp_path)
    single = params_with(partition=raw["partition"], model=raw["model"],
                         train={**raw["train"], "devices": 1, "strategy": "auto"})
    prepare_ids(TEXT * 30, single)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    result = subprocess.run([sys.executable, "-m", "pipeline.train"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr and "All distributed processes" in (
        result.stderr)

    report = json.loads(layout.TRAIN_REPORT.read_text())
    history = pd.read_csv(layout.TRAIN_METRICS)
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    [run] = client.search_runs([experiment.experiment_id])  # one run for both processes
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_ppl")] == [1, 2]

    # Validation scored the whole split once: a one-process evaluation of the checkpoint agrees.
    val = np.load(layout.ids_path("val"))
    best = load_task(layout.CHECKPOINTS / "best.ckpt")
    assert split_perplexity(best, val) == pytest.approx(report["best_val_ppl"], rel=1e-6)
    last = load_task(layout.CHECKPOINTS / "last.ckpt")
    assert split_perplexity(last, val) == pytest.approx(history["val_ppl"].iloc[-1], rel=1e-6)

    # Two processes with two rows each train like one process with four rows.
    alone = tmp_path / "alone"
    alone.mkdir()
    monkeypatch.chdir(alone)
    prepare_ids(TEXT * 30, single)
    train_stage(single)
    expected = pd.read_csv(layout.TRAIN_METRICS)
    # Each process trained on its own half of every minibatch: together, the same tokens.
    assert history["train_tokens"].tolist() == expected["train_tokens"].tolist()
    for column in ("train_ppl", "val_ppl"):
        assert history[column].tolist() == pytest.approx(expected[column].tolist(), rel=1e-4)
