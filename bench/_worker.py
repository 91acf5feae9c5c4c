"""What the benchmarks share: run a measurement in a fresh process so its peak memory is its own."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def _high_water_kib(pid: int | str = "self") -> int | None:
    """VmHWM of a process: its own peak resident memory. getrusage's ru_maxrss is not that: a
    process keeps the peak its parent had when it was spawned (Linux carries it across exec),
    so a worker started by a large benchmark would report the benchmark's size."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mb() -> float:
    kib = _high_water_kib()
    if kib is None:  # not Linux: the rusage figure, with the caveat above
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def exit_on_sigterm() -> None:
    """Make `kill` (SIGTERM) end the benchmark as an exception would, through its `finally`
    blocks and context managers, so the processes it started stop with it (`subprocess.run`
    and `run_watched` kill theirs; the benchmarks' own `Popen`s are stopped in `finally`). By
    default SIGTERM ends Python at once and they run on, slowing whatever is timed next."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def run_watched(command: list[str], **popen: Any) -> tuple[int, float, float, str]:
    """Run `command`; its exit status, wall seconds, peak resident MiB (its VmHWM, read every
    5 ms until it exits: the last reading, a hair under the true peak at worst) and its
    output (stdout, with stderr unless redirected)."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.STDOUT)
    start = time.perf_counter()
    peak = 0
    with subprocess.Popen(command, text=True, **popen) as proc:
        output: list[str] = []
        reader = threading.Thread(
            target=lambda: output.append(proc.stdout.read() if proc.stdout else ""))
        reader.start()
        try:
            while proc.poll() is None:
                peak = max(peak, _high_water_kib(proc.pid) or 0)
                time.sleep(0.005)
        except BaseException:  # stopped (exit_on_sigterm, Ctrl-C): the command stops too
            proc.kill()
            raise
        reader.join()
    return proc.returncode, time.perf_counter() - start, peak / 1024, "".join(output)


def report(result: dict[str, object]) -> None:
    """Called by a worker: print its result as the last line of stdout."""
    print(json.dumps(result))


def measure(script: str | Path, *args: str) -> dict[str, float]:
    """Run `script --worker args...` and return the JSON it reports."""
    out = subprocess.run([sys.executable, str(script), "--worker", *args],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def save(path: Path, results: object) -> None:
    """Write a benchmark's results as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
