"""Faults without loss: a stage stopped by a signal, and bad input files, as a user meets them.

The stages run as subprocesses (`python -m pipeline.<stage>`, as DVC runs them), so that real
signals reach them.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient
from test_stages import TEXT, TINY_MODEL, params_with, prepare_ids

from rnnlm import layout

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_training_stopped_by_a_signal_exits_128_plus_it_and_fails_its_run(
        tmp_path, monkeypatch, mlflow_store, signum) -> None:
    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["partition"].update(batch_size=4, num_steps=10)
    raw["model"].update(TINY_MODEL)
    raw["train"].update(epochs=500, accelerator="cpu", devices=1)  # far longer than the test
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    prepare_ids(TEXT * 30, params_with(partition=raw["partition"]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    stage = subprocess.Popen([sys.executable, "-m", "pipeline.train"], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = layout.CHECKPOINTS / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and stage.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert last.exists(), "no checkpoint within 120 s"
    time.sleep(1.0)  # into a later epoch
    stage.send_signal(signum)
    _, stderr = stage.communicate(timeout=120)

    assert stage.returncode == 128 + signum, stderr[-2000:]
    name = signal.Signals(signum).name
    assert f"stage train stopped by {name}" in stderr and "train.resume: true" in stderr
    assert "Traceback" not in stderr
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"  # closed, not left RUNNING
    # What was saved stays whole: the last checkpoint loads, and names its run for a resume.
    saved = torch.load(last, weights_only=True)
    assert saved["state_dict"] and run.data.tags["last_checkpoint"]


def stage(module: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    return subprocess.run([sys.executable, "-m", module], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_missing_ids_name_the_stage_that_writes_them(tmp_path, monkeypatch, mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    prepare_ids(TEXT * 30, params_with(partition={"batch_size": 4, "num_steps": 10}))
    layout.ids_path("train").unlink()
    result = stage("pipeline.train", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("error in stage train: data/processed/ids/train.npy is missing: run `dvc repro "
            "partition`") in result.stderr


def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(capsys) -> None:
    from pipeline._stage import run_stage

    def full_disk(params: object) -> None:
        raise OSError(28, "No space left on device", "reports/metrics.json")

    with pytest.raises(SystemExit) as stopped:
        run_stage("evaluate", full_disk)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.startswith(
        "error in stage evaluate: reports/metrics.json: No space left on device; free space")


def test_a_damaged_checkpoint_is_a_clear_error_for_generate(tmp_path, monkeypatch, capsys,
                                                            mlflow_store) -> None:
    from pipeline.train import train_stage
    from rnnlm import generate

    monkeypatch.chdir(tmp_path)
    params = params_with(partition={"batch_size": 4, "num_steps": 10}, model=TINY_MODEL,
                         train={"epochs": 1, "accelerator": "cpu", "devices": 1})
    prepare_ids(TEXT * 30, params)
    train_stage(params)
    best = layout.CHECKPOINTS / "best.ckpt"
    best.write_bytes(best.read_bytes()[:1000])  # a save cut short
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        generate.main(["--tokens", "5"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"{layout.RNN_DIR / 'checkpoints' / 'best.ckpt'} is not a readable checkpoint" in err
    assert "dvc checkout models/rnn" in err
