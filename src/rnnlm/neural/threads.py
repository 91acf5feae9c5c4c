"""How many threads a training uses on a CPU: the cores it may use that other processes leave free.

PyTorch starts as many OpenMP threads as the machine has cores, and they spin while they wait
for work. Two trainings side by side on two cores (a `dvc queue start -j 2`, a teammate's job, a
busy CI runner) then spin against each other: measured here, two default-size trainings ran 60
times slower each than one alone, where one thread each runs both at about full speed. So a
training on the CPU measures, every few seconds, how many cores other processes keep busy, and
uses the rest (at least one thread). At the default configuration's size (a GRU of hidden 256)
one thread and two give the same digits (tested, with `MKL_CBWR` pinned: see
`pipeline/__init__.py`); at some sizes they do not (a GRU of hidden 16 trained to other weights),
so where reruns on a machine of varying load must match byte for byte, set `train.threads` to a
number.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import Callback


def usable_cores() -> int:
    """The cores this process may run on (its affinity, e.g. under `taskset` or a container's
    cpuset), not all the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_busy_seconds(cpu_line: str, tick: float) -> float:
    """CPU seconds the whole machine has been busy since boot, from the `cpu` line of
    `/proc/stat` (in clock ticks of `tick` a second): all but idle and iowait time; guest time
    is already counted in user time."""
    ticks = [int(v) for v in cpu_line.split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / tick


def others_busy_cores(elapsed: float, machine_busy: float, own_busy: float) -> float | None:
    """Cores other processes kept busy on average over `elapsed` seconds, in which the machine
    was busy `machine_busy` CPU seconds and this process `own_busy` of them (None for no time)."""
    if elapsed <= 0:
        return None
    return max(0.0, (machine_busy - own_busy) / elapsed)


class CpuMeter:
    """Cores kept busy by other processes since the last reading: the machine's busy time
    (`/proc/stat`) less this process's own (all its threads, spinning ones included)."""

    def __init__(self) -> None:
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        try:
            cpu_line = Path("/proc/stat").read_text().split("\n", 1)[0]
        except OSError:
            return None  # not Linux: nothing to measure
        own = sum(os.times()[:2])
        return time.monotonic(), machine_busy_seconds(cpu_line, self._tick), own

    def others_busy(self) -> float | None:
        """Cores busy with other processes on average since the last call (None without /proc)."""
        now = self._read()
        if now is None or self._last is None:
            return None
        (t0, busy0, own0), (t1, busy1, own1) = self._last, now
        self._last = now
        return others_busy_cores(t1 - t0, busy1 - busy0, own1 - own0)


def free_cores(cores: int, others_busy: float | None) -> int:
    """Threads to use: the cores left free, at least one."""
    if others_busy is None:
        return cores
    return max(1, min(cores, round(cores - others_busy)))


class ThreadShare(Callback):
    """Sets `torch.set_num_threads` to the free cores when training starts (after a short
    measurement) and again every `interval` seconds, so trainings that start or end beside it
    change its share."""

    def __init__(self, interval: float = 2.0, first_look: float = 0.3) -> None:
        self.interval, self.first_look = interval, first_look
        self.cores = usable_cores()
        self.chosen: list[int] = []  # every thread count set, in order (for tests and logs)
        self._meter: CpuMeter | None = None
        self._checked = 0.0

    def _apply(self) -> None:
        assert self._meter is not None
        threads = free_cores(self.cores, self._meter.others_busy())
        self._checked = time.monotonic()
        if not self.chosen or threads != self.chosen[-1]:
            torch.set_num_threads(threads)
            self.chosen.append(threads)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not isinstance(trainer.accelerator, CPUAccelerator):
            return  # the GPU does the work; the CPU threads only feed it
        self._meter = CpuMeter()
        time.sleep(self.first_look)  # what the machine is doing before this training adds to it
        self._apply()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._meter is not None and time.monotonic() - self._checked >= self.interval:
            self._apply()
