"""The whole stack in one folder (default `.team/` at the project's root, ignored by git):
`up` starts PostgreSQL, the S3 emulator and the MLflow server, in that order, and gives the team
user its permissions; `down` stops them in the reverse order and deletes their data; `exports`
are the lines a client evaluates to use them.

The folder holds `stack.json` (ports, process ids, the generated passwords: readable by its
owner only), `basic_auth.ini`, the PostgreSQL cluster, and `logs/` (kept by `down`). Every
password is generated at `up`; the stack is disposable: the emulator keeps the bucket in memory,
so the database, whose runs point into the bucket, goes with it at `down`.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rnnlm.errors import RnnlmError
from rnnlm.team import postgres, processes
from rnnlm.team.object_store import BUCKET, ObjectStore
from rnnlm.team.tracking_server import ADMIN, TrackingServer
from rnnlm.tracking import connection

DEFAULT_PORT = 5050  # the MLflow server's; the S3 emulator takes the next, PostgreSQL the one after
TEAM_USER = "rnnlm"
DB_ROLE = "mlflow"
STORE_DB, AUTH_DB = "mlflow", "mlflow_auth"
ARTIFACTS = f"s3://{BUCKET}/mlflow"
DVC_REMOTE = f"s3://{BUCKET}/dvc"
SERVICES = ("mlflow", "s3", "postgres")  # the order they stop in


def default_folder() -> Path:
    return connection.project_root() / ".team"


def _secret() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Stack:
    folder: Path
    ports: dict[str, int]
    secrets: dict[str, str] = field(default_factory=lambda: {
        name: _secret() for name in ("admin", "team", "superuser", "database", "flask",
                                     "s3_key", "s3_secret")})
    pids: dict[str, int] = field(default_factory=dict)

    # -- its parts --

    @property
    def state_file(self) -> Path:
        return self.folder / "stack.json"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def cluster(self) -> postgres.Cluster:
        return postgres.Cluster(self.folder / "postgres", self.ports["postgres"])

    @property
    def object_store(self) -> ObjectStore:
        return ObjectStore(self.ports["s3"], self.secrets["s3_key"], self.secrets["s3_secret"])

    @property
    def server(self) -> TrackingServer:
        database = self.secrets["database"]
        return TrackingServer(
            self.ports["mlflow"], self.cluster.uri(DB_ROLE, database, STORE_DB),
            self.cluster.uri(DB_ROLE, database, AUTH_DB), ARTIFACTS, self.secrets["admin"],
            self.secrets["flask"])

    # -- its state --

    def save(self) -> None:
        """Written whole or not at all, readable by its owner only from the start."""
        state = {"ports": self.ports, "secrets": self.secrets, "pids": self.pids}
        fd, name = tempfile.mkstemp(prefix=".stack.", suffix=".tmp", dir=self.folder)  # 0600
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(state, f, indent=2)
            os.replace(name, self.state_file)
        finally:
            Path(name).unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: Path) -> Stack | None:
        try:
            state = json.loads((folder / "stack.json").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RnnlmError(f"{folder / 'stack.json'} is unreadable ({exc}). Fix: stop what "
                             "it started by hand, then delete it") from None
        return cls(folder, state["ports"], state["secrets"], state.get("pids", {}))

    def marker(self, service: str) -> str:
        """What the command line of the stack's process of `service` holds."""
        if service == "postgres":
            return str(self.cluster.data)
        return str(self.ports[service])

    def ours(self, service: str) -> int | None:
        """The pid of the stack's process of `service`, if it still runs."""
        pid = self.pids.get(service)
        return pid if pid is not None and processes.alive(pid, self.marker(service)) else None

    def running(self) -> bool:
        return all(self.ours(service) is not None for service in SERVICES)

    # -- what a client needs --

    def exports(self, admin: bool = False) -> list[str]:
        """`export NAME=value` lines: the MLflow server and a user's credentials (the team
        user's, or the admin's), and the S3 settings DVC's `s3://` remote reads."""
        user, password = (ADMIN, self.secrets["admin"]) if admin else (TEAM_USER,
                                                                        self.secrets["team"])
        values = {"MLFLOW_TRACKING_URI": self.server.url, "MLFLOW_TRACKING_USERNAME": user,
                  "MLFLOW_TRACKING_PASSWORD": password,
                  **self.object_store.client_settings(),
                  # botocore's endpoint setting for S3 alone: DVC's remote needs no endpointurl.
                  "AWS_ENDPOINT_URL_S3": self.object_store.endpoint}
        return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


def _ports(port: int) -> dict[str, int]:
    if port == 0:
        return {name: processes.free_port() for name in ("mlflow", "s3", "postgres")}
    ports = {"mlflow": port, "s3": port + 1, "postgres": port + 2}
    for name, number in ports.items():
        if processes.port_taken(number):
            raise RnnlmError(f"port {number} (for {name}) is taken on 127.0.0.1. Fix: "
                             f"`rnnlm team up --port N` (uses N, N+1, N+2; 0: any free ports), "
                             f"or stop what listens there")
    return ports


def up(folder: Path, port: int = DEFAULT_PORT) -> tuple[Stack, bool]:
    """The stack in `folder`, started unless it runs already (then: False)."""
    existing = Stack.load(folder)
    if existing is not None:
        if existing.running():
            return existing, False
        down(folder)  # what is left of a stack that died (a reboot, a killed process)
    stack = Stack(folder, _ports(port))
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # PostgreSQL's user must reach its cluster inside
    try:
        _start(stack)
    except BaseException:
        down(folder)
        raise
    return stack, True


def _start(stack: Stack) -> None:
    stack.save()  # first, so that `down` finds whatever starts below
    cluster, secret = stack.cluster, stack.secrets
    cluster.init(secret["superuser"])
    stack.pids["postgres"] = cluster.start()
    stack.save()
    cluster.create_databases(secret["superuser"], DB_ROLE, secret["database"],
                             (STORE_DB, AUTH_DB))
    # Each pid is saved before it is waited for: one that never answers is stopped by `down`.
    s3_log = stack.logs / "s3.log"
    stack.pids["s3"] = stack.object_store.start(s3_log)
    stack.save()
    stack.object_store.wait(stack.pids["s3"], s3_log)
    stack.object_store.create_bucket()
    auth_config, mlflow_log = stack.folder / "basic_auth.ini", stack.logs / "mlflow.log"
    stack.server.write_auth_config(auth_config)
    stack.pids["mlflow"] = stack.server.start(
        auth_config, mlflow_log, {**stack.object_store.client_settings(),
                                  "MLFLOW_S3_ENDPOINT_URL": stack.object_store.endpoint})
    stack.save()
    stack.server.wait(stack.pids["mlflow"], mlflow_log)
    stack.server.grant_team_user(TEAM_USER, secret["team"], (
        connection.experiment_name(), connection.experiment_name("sequence")))


def down(folder: Path) -> list[str]:
    """Stop the stack in `folder` and delete its data (its logs stay); what was stopped."""
    stack = Stack.load(folder)
    if stack is None:
        return []
    stopped = []
    for name in SERVICES:
        pid = stack.ours(name)  # not a process that took a dead one's pid
        if name == "postgres" and (stack.cluster.data / "postmaster.pid").is_file():
            # pg_ctl reads the server's own pid file (there even if `up` failed before saving
            # it); should it fail, the process group is signalled below.
            with contextlib.suppress(RnnlmError):
                stack.cluster.stop()
        if pid is not None:
            processes.stop_group(pid)
            stopped.append(f"{name} (pid {pid})")
    _save_postgres_log(stack)
    for entry in folder.iterdir():
        if entry.name != "logs":
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    return stopped


def _save_postgres_log(stack: Stack) -> None:
    log = stack.cluster.log
    if log.is_file():
        stack.logs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, stack.logs / "postgres.log")


def owner_note() -> str:
    """Who PostgreSQL runs as, for the summary."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    return postgres.SERVICE_USER


def summary(stack: Stack) -> str:
    """What runs where, and how a client uses it (the lines to stderr beside the exports)."""
    s, p = stack.server, stack.ports
    return "\n".join([
        f"team stack in {stack.folder} (logs in {stack.logs}):",
        f"  PostgreSQL   127.0.0.1:{p['postgres']} (as {owner_note()}; databases {STORE_DB}, "
        f"{AUTH_DB})",
        f"  S3 emulator  {stack.object_store.endpoint} (moto; bucket {BUCKET}, in memory)",
        f"  MLflow       {s.url} (basic-auth; artifacts {ARTIFACTS}, proxied)",
        f"users: {TEAM_USER} (EDIT on the project's experiments and registered models), "
        f"{ADMIN} (`rnnlm team env --admin`)",
        'use it: eval "$(rnnlm team env)"; for DVC: '
        f"dvc remote add -d team {DVC_REMOTE}",
        "stop it: make team-down (the database and the bucket go with it)"])
