"""A training's CPU threads: the cores other processes leave free, and the same numbers with any
count.

The rule is tested with the load given as an input (the `/proc/stat` and own CPU times the meter
reads, or the meter's reading itself), never by loading the machine: on a shared machine the
background load is whatever the neighbours make it.
"""

from collections.abc import Iterator
from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch
from helpers.project import params_with
from helpers.stages import TEXT, TINY_MODEL, prepare_ids
from pytorch_lightning.accelerators import CPUAccelerator, CUDAAccelerator

from pipeline.train import train_stage
from rnnlm import layout
from rnnlm.neural import threads, trainer
from rnnlm.neural.options import TrainerOptions
from rnnlm.neural.threads import (
    CpuMeter,
    ThreadShare,
    free_cores,
    machine_busy_seconds,
    others_busy_cores,
)


@pytest.fixture(autouse=True)
def torch_threads() -> Iterator[None]:
    """The thread count a test sets is put back: later tests run with the session's."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_free_cores_leaves_the_busy_ones_and_keeps_one_thread() -> None:
    assert free_cores(2, 0.0) == 2
    assert free_cores(2, 0.3) == 2  # light background work
    assert free_cores(2, 1.0) == 1
    assert free_cores(2, 2.0) == 1  # never zero
    assert free_cores(8, 2.6) == 5
    assert free_cores(4, None) == 4  # nothing to measure: all of them


def test_the_machines_busy_time_is_all_but_idle_and_iowait() -> None:
    # /proc/stat's first line: user nice system idle iowait irq softirq steal guest guest_nice,
    # in clock ticks; guest time is already inside user time, so it is not added again.
    line = "cpu  400 100 200 5000 300 10 20 30 999 999"
    assert machine_busy_seconds(line, tick=100) == pytest.approx((400 + 100 + 200 + 10 + 20 + 30)
                                                                 / 100)
    assert machine_busy_seconds("cpu  400 100 200 5000", tick=100) == pytest.approx(7.0)  # old


def test_the_meter_counts_other_processes_not_this_one() -> None:
    # Over 2 s the machine was busy 3.5 CPU seconds, 1.5 of them this process's own threads.
    assert others_busy_cores(2.0, machine_busy=3.5, own_busy=1.5) == pytest.approx(1.0)
    assert others_busy_cores(2.0, machine_busy=2.0, own_busy=2.0) == 0.0  # only this process
    # The two clocks tick apart: own time a little over the machine's is no negative load.
    assert others_busy_cores(1.0, machine_busy=0.98, own_busy=1.0) == 0.0
    assert others_busy_cores(0.0, machine_busy=1.0, own_busy=0.0) is None  # no time passed


def test_the_meter_reads_this_machine() -> None:
    """Whatever the load: a reading is a number of cores, or None where there is no /proc."""
    meter = CpuMeter()
    reading = meter.others_busy()
    assert reading is None or reading >= 0.0


class ScriptedMeter:
    """A CpuMeter whose readings are given: other processes keep `load[0]`, then `load[1]`, ...
    cores busy."""

    load: ClassVar[list[float]] = []

    def __init__(self) -> None:
        self.readings = iter(self.load)

    def others_busy(self) -> float | None:
        return next(self.readings)


def share_with(monkeypatch: pytest.MonkeyPatch, cores: int, load: list[float]) -> ThreadShare:
    monkeypatch.setattr(threads, "usable_cores", lambda: cores)
    monkeypatch.setattr(ScriptedMeter, "load", load)
    monkeypatch.setattr(threads, "CpuMeter", ScriptedMeter)
    return ThreadShare(interval=0.0, first_look=0.0)


def test_a_training_beside_busy_cores_takes_the_free_ones_and_follows_the_load(
        monkeypatch) -> None:
    share = share_with(monkeypatch, cores=4, load=[1.0, 1.0, 3.0, 0.0])
    on_cpu = SimpleNamespace(accelerator=CPUAccelerator())
    share.on_train_start(on_cpu, None)  # type: ignore[arg-type]
    assert share.chosen == [3] and torch.get_num_threads() == 3
    for batch in range(3):  # the load changes: the share follows it, at least one thread
        share.on_train_batch_end(on_cpu, None, None, None, batch)  # type: ignore[arg-type]
    assert share.chosen == [3, 1, 4] and torch.get_num_threads() == 4


def test_on_a_gpu_the_cpu_threads_are_left_alone(monkeypatch) -> None:
    share = share_with(monkeypatch, cores=4, load=[1.0])
    on_gpu = SimpleNamespace(accelerator=CUDAAccelerator())
    share.on_train_start(on_gpu, None)  # type: ignore[arg-type]
    share.on_train_batch_end(on_gpu, None, None, None, 0)  # type: ignore[arg-type]
    assert share.chosen == []


def test_auto_threads_share_the_cores_and_a_count_is_set_as_given(tmp_path) -> None:
    auto = trainer.build_trainer(TrainerOptions(epochs=1, clip=0, accelerator="cpu", devices=1),
                                 tmp_path, progress=False)
    assert any(isinstance(c, ThreadShare) for c in auto.callbacks)  # type: ignore[attr-defined]
    fixed = trainer.build_trainer(TrainerOptions(epochs=1, clip=0, accelerator="cpu", devices=1,
                                                 threads=1), tmp_path, progress=False)
    assert not any(isinstance(c, ThreadShare) for c in fixed.callbacks)  # type: ignore[attr-defined]
    assert torch.get_num_threads() == 1


def test_the_train_stage_uses_the_cores_other_processes_leave(tmp_path, monkeypatch,
                                                              mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = params_with(partition={"batch_size": 4, "num_steps": 10}, model=TINY_MODEL,
                         train={"epochs": 1, "accelerator": "cpu", "devices": 1})
    prepare_ids(TEXT * 30, params)
    seen: list[ThreadShare] = []
    monkeypatch.setattr(trainer, "ThreadShare",
                        lambda: seen.append(share_with(monkeypatch, 4, [1.0] * 1000)) or seen[-1])
    train_stage(params)
    [share] = seen
    assert share.chosen == [3]


def tiny_training(**train: object):
    # Hidden 256, batch 32: large enough that PyTorch's kernels do split the work over threads
    # (bench_limit: two threads ran this size 1.3x to 1.6x faster than one).
    return params_with(partition={"batch_size": 32, "num_steps": 5},
                       model={"kind": "gru", "hidden": 256},
                       train={"epochs": 2, "accelerator": "cpu", "devices": 1, **train})


@pytest.mark.slow
def test_the_thread_count_changes_no_number(tmp_path, monkeypatch, mlflow_store) -> None:
    reports = []
    for count in (1, 2, "auto"):
        where = tmp_path / str(count)
        where.mkdir()
        monkeypatch.chdir(where)
        params = tiny_training(threads=count)
        prepare_ids(TEXT * 30, params)
        train_stage(params)
        reports.append((layout.TRAIN_METRICS.read_bytes(),
                        (layout.CHECKPOINTS / "best.ckpt").read_bytes()))
    assert reports[0] == reports[1] == reports[2]
