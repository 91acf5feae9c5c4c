"""The stack's PostgreSQL: a cluster of its own (Debian's `initdb` and `pg_ctl`), listening on
127.0.0.1 only, on a private port, with no Unix socket; password (SCRAM) authentication for every
connection. It holds two databases owned by one role: the MLflow server's store and its
basic-auth users.

PostgreSQL refuses to run as root: run as root, the cluster belongs to the unprivileged user
`postgres` (which Debian's package creates), so every folder above it must be searchable by
others.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rnnlm.errors import RnnlmError

SUPERUSER = "postgres"
SERVICE_USER = "postgres"  # the unprivileged owner of the cluster when run as root
_DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"


def binaries() -> Path:
    """The folder of `initdb` and `pg_ctl`: on PATH, or Debian's newest
    /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob(_DEBIAN_BINARIES),
                   key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    for folder in reversed(found):
        if (Path(folder) / "initdb").is_file():
            return Path(folder)
    raise RnnlmError("PostgreSQL's initdb is neither on PATH nor in /usr/lib/postgresql/*/bin. "
                     "Fix: install PostgreSQL's server (Debian: `apt-get install postgresql`)")


def _owner() -> pwd.struct_passwd | None:
    """The user the cluster runs as: None for the current user, `postgres` under root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise RnnlmError(f"PostgreSQL refuses to run as root and there is no user "
                         f"{SERVICE_USER!r} to run it as. Fix: `useradd --system {SERVICE_USER}` "
                         "(Debian's postgresql package creates it), or run as another user"
                         ) from None


def _check_reachable(folder: Path, owner: pwd.struct_passwd) -> None:
    for parent in reversed(folder.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001 and parent.stat().st_uid != owner.pw_uid:
            raise RnnlmError(f"PostgreSQL runs as user {owner.pw_name}, who cannot reach "
                             f"{folder}: {parent} is not searchable by others. Fix: "
                             f"`chmod o+x {parent}`, or give the stack another folder (--dir)")


@dataclass(frozen=True)
class Cluster:
    """A cluster in `folder` (its data in `folder/data`, its log `folder/server.log`)."""

    folder: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        owner = _owner()
        program = binaries() / command[0]
        result = subprocess.run([str(program), *command[1:]], cwd=self.folder,
                                capture_output=True, text=True,
                                user=owner.pw_uid if owner else None,
                                group=owner.pw_gid if owner else None,
                                extra_groups=[] if owner else None)
        if result.returncode != 0:
            raise RnnlmError(f"{command[0]} failed ({result.returncode}): "
                             f"{(result.stderr or result.stdout).strip()}")
        return result

    def init(self, superuser_password: str) -> None:
        """A new cluster whose superuser `postgres` has `superuser_password`."""
        owner = _owner()
        self.folder.mkdir(parents=True, exist_ok=True)
        password_file = self.folder / ".superuser-password"
        password_file.write_text(superuser_password + "\n")
        password_file.chmod(0o600)
        if owner is not None:
            _check_reachable(self.folder, owner)
            for path in (self.folder, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self.folder.chmod(0o700)
        try:
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-E", "UTF8",
                      "--no-locale", "--auth=scram-sha-256", f"--pwfile={password_file}")
        finally:
            password_file.unlink(missing_ok=True)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# rnnlm team: loopback only, a private port, no Unix socket\n"
                       f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       "unix_socket_directories = ''\n")

    def start(self) -> int:
        """Start the server and wait until it accepts connections; its pid."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "start")
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        if (self.data / "postmaster.pid").is_file():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def create_databases(self, superuser_password: str, role: str, password: str,
                         names: tuple[str, ...]) -> None:
        """A login `role` with `password`, owning a new database of each name."""
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                                      password=superuser_password, dbname="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
                for name in names:
                    cursor.execute(f'CREATE DATABASE "{name}" OWNER "{role}"')
        finally:
            connection.close()

    def uri(self, role: str, password: str, database: str) -> str:
        """The SQLAlchemy URI MLflow takes: psycopg2 named (SQLAlchemy 2.1's plain
        `postgresql://` means psycopg 3)."""
        return f"postgresql+psycopg2://{role}:{password}@127.0.0.1:{self.port}/{database}"
