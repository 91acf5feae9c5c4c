"""Faults without loss, as a user meets them: kill -9, SIGTERM, SIGINT, a full disk, read-only
outputs, a damaged checkpoint, bad params under `dvc repro`. Each case checks the exit code, the
message, the MLflow run's final status, and that no output is lost or half-written.

The stages run as subprocesses (`python -m pipeline.<stage>`, as DVC runs them) wherever a real
signal or exit code is under test.
"""

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers.dvc_project import run as command
from helpers.dvc_project import set_param, stages_run
from helpers.project import ROOT, committed_text, files, params_with
from helpers.stages import (
    TEXT,
    TINY_MODEL,
    prepare_ids,
    prepared_directories,
    tiny_params,
    train_params,
)
from mlflow import MlflowClient

from pipeline import _stage
from pipeline._stage import run_stage
from pipeline.evaluate import evaluate_stage
from pipeline.ngram import ngram_stage
from pipeline.train import train_stage
from rnnlm import layout
from rnnlm.checksums import weights_checksum
from rnnlm.neural import checkpoints
from rnnlm.neural.checkpoints import PreviousModel, read_checkpoint
from rnnlm.tracking import orphans

ENV = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}


def start_stage(module: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", module], cwd=cwd, env={**os.environ, **ENV},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_module(module: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env={**os.environ, **ENV},
                          capture_output=True, text=True, timeout=600)


def wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.exists(), f"no {path} within {seconds} s"


def runs_of_this_test(store: str) -> list:
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_training_stopped_by_a_signal_exits_128_plus_it_and_fails_its_run(
        tmp_path, monkeypatch, mlflow_store, signum) -> None:
    monkeypatch.chdir(tmp_path)
    tiny_params(tmp_path, epochs=500)  # far longer than the test
    stage = start_stage("pipeline.train", tmp_path)
    last = layout.CHECKPOINTS / "last.ckpt"
    wait_for(last, stage)
    time.sleep(1.0)  # into a later epoch
    stage.send_signal(signum)
    _, stderr = stage.communicate(timeout=120)

    assert stage.returncode == 128 + signum, stderr[-2000:]
    name = signal.Signals(signum).name
    assert f"stage train stopped by {name}" in stderr and "train.resume: true" in stderr
    assert "Traceback" not in stderr
    [run] = runs_of_this_test(mlflow_store)
    assert run.info.status == "FAILED"  # closed, not left RUNNING
    # What was saved stays whole: the last checkpoint loads, and names its run for a resume.
    saved = torch.load(last, weights_only=True)
    assert saved["state_dict"] and run.data.tags["last_checkpoint"]


def test_missing_ids_name_the_stage_that_writes_them(tmp_path, monkeypatch, mlflow_store,
                                                    capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(committed_text("params.yaml"))
    prepare_ids(TEXT * 30, params_with(partition={"batch_size": 4, "num_steps": 10}))
    layout.ids_path("train").unlink()
    with pytest.raises(SystemExit) as stopped:
        run_stage("train", train_stage)  # what `python -m pipeline.train` runs
    assert stopped.value.code == 2
    assert ("error in stage train: data/processed/ids/train.npy is missing: run `dvc repro "
            "partition`") in capsys.readouterr().err


@pytest.fixture
def committed_stage_params(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_stage reads the params.yaml of the current directory: here the committed one's."""
    monkeypatch.setattr(_stage, "load_params", lambda: params_with())


def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(capsys,
                                                                  committed_stage_params) -> None:
    def full_disk(params: object) -> None:
        raise OSError(28, "No space left on device", "reports/metrics/rnn.json")

    with pytest.raises(SystemExit) as stopped:
        run_stage("evaluate", full_disk)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.startswith(
        "error in stage evaluate: reports/metrics/rnn.json: No space left on device; free space")


def test_a_damaged_checkpoint_is_a_clear_error_for_generate(tmp_path, monkeypatch, capsys,
                                                            mlflow_store) -> None:
    from rnnlm.cli import generate

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


# kill -9 (or the OOM killer): no handler runs, so the next process that opens the store closes
# the run.

@pytest.mark.slow
def test_a_training_killed_by_sigkill_is_closed_killed_and_resumes_in_its_run(
        tmp_path, monkeypatch, mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    raw = tiny_params(tmp_path, epochs=30)
    stage = start_stage("pipeline.train", tmp_path)
    wait_for(layout.CHECKPOINTS / "last.ckpt", stage)
    stage.kill()
    stage.wait(timeout=60)
    assert stage.returncode == -signal.SIGKILL
    [run] = runs_of_this_test(mlflow_store)
    assert run.info.status == "RUNNING" and run.data.tags["pid"] == str(stage.pid)

    table = run_module("rnnlm.cli", tmp_path, "runs")  # `make runs`
    assert table.returncode == 0, table.stderr
    [row] = [line for line in table.stdout.splitlines() if "gru-16" in line]
    assert row.split()[-2] == "KILLED", table.stdout  # the status column, before wall_s
    run = MlflowClient(mlflow_store).get_run(run.info.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["killed"].startswith(f"process {stage.pid} on ")
    assert "closed by rnnlm runs" in run.data.tags["killed"]

    raw["train"]["resume"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    resumed = run_module("pipeline.train", tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    [run] = runs_of_this_test(mlflow_store)  # the same run, carried on and closed
    assert run.info.status == "FINISHED" and "killed" not in run.data.tags
    assert run.data.tags["pid"] != str(stage.pid)
    assert run.data.metrics["best_val_ppl"] > 0


def test_a_run_is_closed_only_once_its_own_process_is_gone() -> None:
    me = orphans.process_tags()
    assert not orphans.is_gone(int(me["pid"]), me["pid_started"])
    # The same pid, started at another time: the pid was reused by another process.
    assert orphans.is_gone(int(me["pid"]), str(int(me["pid_started"]) + 1))
    child = subprocess.Popen(["true"])
    time.sleep(0.5)  # ended; not reaped yet (a zombie)
    assert orphans.is_gone(child.pid, "")
    child.wait()
    assert orphans.is_gone(child.pid, "")


# A full disk while a checkpoint is saved.

def failing_saves(monkeypatch: pytest.MonkeyPatch, failing: int, watched: Path) -> dict:
    """Make the `failing`-th checkpoint save write half its bytes, then fail as a full disk does;
    returns what `watched` held at that moment."""
    real_save, calls, seen = torch.save, [], {}

    def save(obj, f, *args, **kwargs) -> None:
        calls.append(f)
        if len(calls) != failing:
            return real_save(obj, f, *args, **kwargs)
        if watched.exists():  # what was saved before, without the file being written now
            seen.update({k: v for k, v in files(watched).items() if not k.endswith(".tmp")})
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", save)
    return seen


@pytest.mark.slow
def test_a_failed_checkpoint_save_keeps_the_last_one_and_resumes_bit_identically(
        tmp_path, monkeypatch, mlflow_store) -> None:
    params = train_params(epochs=3)
    straight, faulted = prepared_directories(tmp_path, monkeypatch, params, "straight", "faulted")
    monkeypatch.chdir(straight)
    train_stage(params)

    monkeypatch.chdir(faulted)
    with monkeypatch.context() as patch:
        before = failing_saves(patch, failing=3, watched=layout.RNN_DIR)  # epoch 2's first save
        with pytest.raises(OSError, match="No space left"):
            train_stage(params)
    assert before and files(layout.RNN_DIR) == before  # epoch 1's checkpoints, whole; no temp
    assert read_checkpoint(layout.CHECKPOINTS / "last.ckpt")["epoch"] == 0
    assert runs_of_this_test(mlflow_store)[-1].info.status == "FAILED"

    train_stage(train_params(epochs=3, resume=True))
    for name in ("best.ckpt", "last.ckpt"):
        assert weights_checksum(read_checkpoint(faulted / layout.CHECKPOINTS / name)["state_dict"]
                                ) == weights_checksum(read_checkpoint(
                                    straight / layout.CHECKPOINTS / name)["state_dict"])
    assert (faulted / layout.TRAIN_METRICS).read_bytes() == (
        straight / layout.TRAIN_METRICS).read_bytes()
    assert runs_of_this_test(mlflow_store)[-1].info.status == "FINISHED"


def test_a_new_training_keeps_the_previous_model_until_its_first_checkpoint(
        tmp_path, monkeypatch, mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = train_params(epochs=1)
    prepare_ids(TEXT * 30, params)
    train_stage(params)
    trained = files(layout.RNN_DIR)
    with monkeypatch.context() as patch:
        failing_saves(patch, failing=1, watched=layout.RNN_DIR)
        with pytest.raises(OSError, match="No space left"):
            train_stage(params.model_copy(update={"seed": 7}))
    assert files(layout.RNN_DIR) == trained  # put back whole: dvc status sees no change
    assert not PreviousModel(layout.RNN_DIR, layout.CHECKPOINTS / "last.ckpt").aside.exists()


def test_a_model_set_aside_by_a_killed_training_is_recovered(tmp_path) -> None:
    model = tmp_path / "rnn"
    previous = PreviousModel(model, model / "checkpoints" / "last.ckpt")
    (model / "checkpoints").mkdir(parents=True)
    (model / "checkpoints" / "last.ckpt").write_text("old")
    previous.set_aside()
    (model / "checkpoints").mkdir(parents=True)  # killed before its first checkpoint
    previous.recover()
    assert (model / "checkpoints" / "last.ckpt").read_text() == "old"
    assert not previous.aside.exists()
    previous.set_aside()
    (model / "checkpoints").mkdir(parents=True)
    (model / "checkpoints" / "last.ckpt").write_text("new")  # killed after it
    previous.recover()
    assert (model / "checkpoints" / "last.ckpt").read_text() == "new"
    assert not previous.aside.exists()


def test_a_resume_after_a_kill_before_the_first_checkpoint_finds_the_model_set_aside(
        tmp_path, monkeypatch, mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = train_params(epochs=2)
    prepare_ids(TEXT * 30, params)
    train_stage(params)
    trained = files(layout.RNN_DIR)
    # What a new training killed before its first checkpoint leaves: the model set aside.
    previous = PreviousModel(layout.RNN_DIR, layout.CHECKPOINTS / "last.ckpt")
    previous.set_aside()
    layout.CHECKPOINTS.mkdir(parents=True)
    train_stage(train_params(epochs=2, resume=True))  # continues the model put back
    assert not previous.aside.exists()
    assert (layout.CHECKPOINTS / "best.ckpt").read_bytes() == trained["checkpoints/best.ckpt"]
    last = read_checkpoint(layout.CHECKPOINTS / "last.ckpt")
    assert weights_checksum(last["state_dict"]) == weights_checksum(
        torch.load(io.BytesIO(trained["checkpoints/last.ckpt"]), weights_only=True)["state_dict"])
    assert runs_of_this_test(mlflow_store)[-1].info.status == "FINISHED"


def test_an_in_process_stage_gives_the_signal_handlers_back(committed_stage_params) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    run_stage("noop", lambda params: None)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_stage_with_128_plus_it_and_says_how_to_go_on(
        capsys, committed_stage_params, signum) -> None:
    """What the subprocess tests above check of a training, on a stage that signals itself."""
    def interrupted(params: object) -> None:
        os.kill(os.getpid(), signum)
        raise AssertionError("the stage went on after the signal")

    with pytest.raises(SystemExit) as stopped:
        run_stage("train", interrupted, again="set train.resume: true to continue")
    assert stopped.value.code == 128 + signum
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"stage train stopped by {signal.Signals(signum).name}: nothing half-written was kept; "
        "set train.resume: true to continue")


def test_runs_left_running_by_a_process_that_is_gone_are_closed_killed(mlflow_store) -> None:
    client = MlflowClient(mlflow_store)
    experiment_id = client.create_experiment(os.environ["MLFLOW_EXPERIMENT_NAME"])
    ended = json.loads(subprocess.run(  # the tags a process that has now ended gave its run
        [sys.executable, "-c", "import json; from rnnlm.tracking import orphans; "
                               "print(json.dumps(orphans.process_tags()))"],
        check=True, capture_output=True, text=True).stdout)
    me = orphans.process_tags()
    gone = client.create_run(experiment_id, tags=ended).info.run_id
    alive = client.create_run(experiment_id, tags=me).info.run_id
    elsewhere = client.create_run(experiment_id, tags={**ended, orphans.HOST_TAG: "elsewhere"}
                                  ).info.run_id
    assert orphans.close_orphaned_runs(client, [experiment_id], "a test") == [gone]
    run = client.get_run(gone)
    assert run.info.status == "KILLED"
    assert run.data.tags[orphans.KILLED_TAG].startswith(f"process {ended['pid']} on ")
    assert run.data.tags[orphans.KILLED_TAG].endswith("closed by a test")
    # This process's run, and one of another host (whose processes cannot be seen): left open.
    assert {client.get_run(r).info.status for r in (alive, elsewhere)} == {"RUNNING"}
    for run_id in (alive, elsewhere):
        client.set_terminated(run_id)


@pytest.mark.slow
def test_a_real_full_disk_during_training_is_one_line_and_loses_nothing(
        tmp_path, monkeypatch, mlflow_store, tmpfs) -> None:
    monkeypatch.chdir(tmp_path)
    raw = tiny_params(tmp_path, epochs=1)
    models = tmpfs.mount(tmp_path / "models", "4m")
    first = run_module("pipeline.train", tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    trained = files(layout.RNN_DIR)
    filler = tmpfs.fill(models, leave=4096)
    raw["seed"] = 7  # a new training, whose checkpoints do not fit
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    full = run_module("pipeline.train", tmp_path)
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-2000:]
    [message] = [line for line in full.stderr.splitlines() if line.startswith("error in stage")]
    assert "No space left on device; free space or make it writable" in message
    assert files(layout.RNN_DIR) == trained and sorted(p.name for p in models.iterdir()) == [
        "filler", "rnn"]  # nothing half-written, nothing left aside
    assert [r.info.status for r in runs_of_this_test(mlflow_store)] == ["FINISHED", "FAILED"]
    filler.unlink()
    assert run_module("pipeline.train", tmp_path).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_evaluate_on_a_read_only_or_full_reports_folder_is_one_line_and_keeps_the_reports(
        tmp_path, monkeypatch, mlflow_store, tmpfs, fault) -> None:
    monkeypatch.chdir(tmp_path)
    tiny_params(tmp_path, epochs=1)
    reports = tmpfs.mount(tmp_path / "reports", "4m")
    params = train_params(epochs=1)
    ngram_stage(params)
    train_stage(params)
    evaluate_stage(params)
    written = files(reports)
    if fault == "read-only":
        tmpfs.read_only(reports)
    else:
        tmpfs.fill(reports, leave=0)
        written = files(reports)
    result = run_module("pipeline.evaluate", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    [message] = [line for line in result.stderr.splitlines() if line.startswith("error in stage")]
    reason = "Read-only file system" if fault == "read-only" else "No space left on device"
    assert message.startswith("error in stage evaluate: reports/") and reason in message
    assert files(reports) == written  # every report as it was, no temporary file left


# A typo in params.yaml under DVC: the stage stops, and no output is lost.

@pytest.mark.slow
def test_a_typo_in_params_costs_no_rerun_once_mended(repo) -> None:
    repo, env = repo
    command(["dvc", "repro"], repo, env)
    good = (repo / "params.yaml").read_text()
    outputs = ("reports", "models", "data/processed")
    trained = {where: files(repo / where) for where in outputs}
    typos = [("model", "hidden", -3, "train"), ("partition", "batch_size", 0, "partition"),
             ("vocab", "min_freq", -1, "vocab"), ("evaluate", "tokens", -5, "evaluate"),
             ("clean", "mode", "bogus", "clean")]
    for section, key, value, stage in typos:
        set_param(repo, section, key, value)
        failed = command(["dvc", "repro"], repo, env, check=False)
        assert failed.returncode != 0 and f"error in stage {stage}: params.yaml is invalid" in (
            failed.stderr), failed.stderr
        (repo / "params.yaml").write_text(good)
        mended = command(["dvc", "repro"], repo, env)
        assert stages_run(mended.stdout) == [], (section, key, mended.stdout)
        assert {where: files(repo / where) for where in outputs} == trained, (section, key)
        assert "Data and pipelines are up to date" in command(["dvc", "status"], repo, env).stdout

    # The same through `dvc exp run`, which sets the typo itself.
    failed = command(["dvc", "exp", "run", "-S", "model.hidden=-3"], repo, env, check=False)
    assert failed.returncode != 0 and "'model.hidden' = -3" in failed.stderr, failed.stderr
    (repo / "params.yaml").write_text(good)
    assert "Data and pipelines are up to date" in command(["dvc", "status"], repo, env).stdout
    assert {where: files(repo / where) for where in outputs} == trained
