"""Runs left RUNNING by a process that is gone (kill -9, the OOM killer, a power cut).

Every run the project opens is tagged with the process that opened it (host, pid and the time
the kernel started it, so a reused pid is not taken for the same process). A stage that opens
the store first closes, as KILLED and with a tag saying why, the RUNNING runs of this host whose
process no longer exists; runs opened on other hosts are left alone, since their processes
cannot be seen from here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

HOST_TAG, PID_TAG, STARTED_TAG = "host", "pid", "pid_started"
KILLED_TAG = "killed"  # why a run was closed as KILLED


def _started(pid: int) -> str:
    """When the kernel started `pid`, in clock ticks since boot ("" where /proc is not there);
    raises ProcessLookupError if there is no such process, or it has ended."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            raise ProcessLookupError(pid) from None
        os.kill(pid, 0)  # no /proc: at least whether the pid exists (raises if not)
        return ""
    # Fields 3 (the state) and 22; the command name (field 2) may hold spaces and parentheses,
    # so count from its end.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # ended, not yet reaped by its parent
        raise ProcessLookupError(pid)
    return fields[19]


def process_tags() -> dict[str, str]:
    """The tags that name this process."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()),
            STARTED_TAG: _started(os.getpid())}


def is_gone(pid: int, started: str) -> bool:
    """Whether the process `pid`, started at `started`, has ended (on this host)."""
    try:
        now = _started(pid)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return bool(started and now and now != started)  # the pid now belongs to another process


def close_orphaned_runs(client: MlflowClient, experiment_ids: list[str], closer: str) -> list[str]:
    """Close as KILLED the RUNNING runs of `experiment_ids` opened on this host by a process that
    is gone; `closer` says who noticed (e.g. "stage train"). Returns their ids."""
    host = socket.gethostname()
    # The host is matched here, not quoted into the filter string, which has no escapes.
    runs = client.search_runs(experiment_ids, filter_string="attributes.status = 'RUNNING'")
    closed = []
    for run in runs:
        tags = run.data.tags
        if tags.get(HOST_TAG) != host:
            continue
        pid = tags.get(PID_TAG, "")
        if not pid.isdigit() or not is_gone(int(pid), tags.get(STARTED_TAG, "")):
            continue
        client.set_tag(run.info.run_id, KILLED_TAG,
                       f"process {pid} on {host} ended without closing the run (kill -9, the OOM "
                       f"killer or a crash); closed by {closer}")
        client.set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
    return closed
