"""A stage's phases, each logged with its wall time and its own peak memory.

`[ngram] count: 41.2 s, peak 1.83 GiB` tells a user of a large corpus where a stage spends its
time and memory, and `bench/bench_ngram_stage.py` reads these lines from the real stage. The
peak is the process's resident high-water mark since the phase began: Linux resets it when "5"
is written to /proc/self/clear_refs. Where that cannot be done, the line gives the peak since
the process started, and says so.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")

log = logging.getLogger("rnnlm.phases")


def _high_water_kib() -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_high_water() -> bool:
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Log how long the block took and its peak resident memory."""
    own = _reset_high_water()
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    peak = _high_water_kib()
    memory = "" if peak is None else (
        f", peak {peak / 2**20:.2f} GiB" + ("" if own else " (since the stage started)"))
    log.info("%s: %.1f s%s", name, seconds, memory)
