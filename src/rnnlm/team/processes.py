"""The stack's server processes: started detached (each the leader of its own process group, its
output in a log file), waited for until they answer, and stopped with their whole group.

The processes outlive the `rnnlm team up` that started them, so whoever stops them is not their
parent and cannot reap them: a process that has exited but not been reaped (a zombie) counts as
stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from rnnlm.errors import RnnlmError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def start(command: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
          cwd: Path | None = None) -> int:
    """Start `command` in a new session (its own process group), stdout and stderr appended to
    `log`; its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, env=dict(env or os.environ),
                                   cwd=cwd, start_new_session=True)
    return process.pid


def _state(pid: int) -> str | None:
    """The process's state letter from /proc (Z: a zombie), None if there is no such process;
    "?" where /proc is not there to tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int, marker: str | None = None) -> bool:
    """Whether `pid` runs (a zombie does not); with `marker`, also whether its command line
    holds it (Linux), so that a pid reused since, after a reboot, is not taken for the stack's."""
    if _state(pid) in (None, "Z", "X"):
        return False
    if marker is None:
        return True
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()
    except OSError:
        return False
    return marker in command


def group(pgid: int) -> list[int]:
    """The live processes of process group `pgid` (Linux: from /proc; elsewhere the leader)."""
    if not Path("/proc/self/stat").exists():
        return [pgid] if alive(pgid) else []
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def stop_group(pgid: int, timeout: float = 30.0) -> None:
    """SIGTERM to the process group `pgid`, then SIGKILL to whatever is left after `timeout`
    seconds; returns once none of its processes is alive."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        if not group(pgid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while group(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
    left = group(pgid)
    if left:
        raise RnnlmError(f"processes {left} of group {pgid} survived SIGKILL; stop them by hand")


def tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(ready: Callable[[], bool], what: str, pid: int | None, log: Path,
               timeout: float) -> None:
    """Poll `ready()` until it is true; a process `pid` that exits first, or `timeout` seconds,
    is a RnnlmError quoting the end of its `log`."""
    deadline = time.monotonic() + timeout
    while not ready():
        if pid is not None and not alive(pid):
            raise RnnlmError(f"{what} exited while starting; the end of {log}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise RnnlmError(f"{what} did not answer within {timeout:.0f} s; the end of "
                             f"{log}:\n{tail(log)}")
        time.sleep(0.25)


def answers(url: str) -> bool:
    """Whether an HTTP GET of `url` answers 200."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False
