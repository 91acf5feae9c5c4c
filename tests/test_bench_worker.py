"""The benchmarks' shared helper: a benchmark stopped with `kill` stops what it started, so a
measurement left running does not slow down whatever is timed next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"  # ended but not yet reaped counts as gone


def test_a_benchmark_stopped_with_kill_stops_the_command_it_watches(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    child = (f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text("
             "str(os.getpid())); time.sleep(60)")
    benchmark = ("import sys; from _worker import exit_on_sigterm, run_watched; "
                 f"exit_on_sigterm(); run_watched([sys.executable, '-c', {child!r}])")
    parent = subprocess.Popen([sys.executable, "-c", benchmark], cwd=BENCH)
    try:
        deadline = time.monotonic() + 30
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the watched command never started"
            time.sleep(0.05)
        child_pid = int(pid_file.read_text())
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=10) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while _alive(child_pid):
            assert time.monotonic() < deadline, "the watched command outlived its benchmark"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()
        if pid_file.is_file() and pid_file.read_text() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
