"""A training's CPU threads: the cores other processes leave free, and the same numbers with any
count."""

import subprocess
import sys
import time

import pytest
from test_stages import TEXT, params_with, prepare_ids

from pipeline.train import train_stage
from rnnlm import layout
from rnnlm.neural.threads import CpuMeter, ThreadShare, free_cores, usable_cores

BUSY_LOOP = [sys.executable, "-c", "while True: pass"]


def test_free_cores_leaves_the_busy_ones_and_keeps_one_thread() -> None:
    assert free_cores(2, 0.0) == 2
    assert free_cores(2, 0.3) == 2  # light background work
    assert free_cores(2, 1.0) == 1
    assert free_cores(2, 2.0) == 1  # never zero
    assert free_cores(8, 2.6) == 5
    assert free_cores(4, None) == 4  # nothing to measure: all of them


def test_the_meter_counts_other_processes_not_this_one() -> None:
    meter = CpuMeter()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # this process busy on one core
        pass
    assert meter.others_busy() < 0.5
    busy = subprocess.Popen(BUSY_LOOP)
    try:
        time.sleep(0.3)
        meter.others_busy()
        time.sleep(1.0)
        assert meter.others_busy() > 0.7
    finally:
        busy.kill()
        busy.wait()


def tiny_training(**train: object):
    # Hidden 256, batch 32: large enough that PyTorch's kernels do split the work over threads
    # (bench_limit: two threads ran this size 1.3x to 1.6x faster than one).
    return params_with(partition={"batch_size": 32, "num_steps": 5},
                       model={"kind": "gru", "hidden": 256},
                       train={"epochs": 2, "accelerator": "cpu", "devices": 1, **train})


@pytest.mark.skipif(usable_cores() < 2, reason="needs two cores to share")
def test_a_training_beside_a_busy_core_takes_the_free_ones(tmp_path, monkeypatch,
                                                           mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = tiny_training()
    prepare_ids(TEXT * 30, params)
    seen: list[ThreadShare] = []
    monkeypatch.setattr("rnnlm.neural.trainer.ThreadShare",
                        lambda: seen.append(ThreadShare(first_look=1.0)) or seen[-1])
    busy = subprocess.Popen(BUSY_LOOP)
    try:
        time.sleep(0.3)
        train_stage(params)
    finally:
        busy.kill()
        busy.wait()
    [share] = seen
    assert share.chosen[0] == usable_cores() - 1


def test_the_thread_count_changes_no_number(tmp_path, monkeypatch, mlflow_store) -> None:
    reports = []
    for threads in (1, 2, "auto"):
        where = tmp_path / str(threads)
        where.mkdir()
        monkeypatch.chdir(where)
        params = tiny_training(threads=threads)
        prepare_ids(TEXT * 30, params)
        train_stage(params)
        reports.append((layout.TRAIN_METRICS.read_bytes(),
                        (layout.CHECKPOINTS / "best.ckpt").read_bytes()))
    assert reports[0] == reports[1] == reports[2]
