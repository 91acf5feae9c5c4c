"""The stack's MLflow tracking server: `mlflow server --app-name basic-auth`, its runs and
registry in PostgreSQL, its users in a second PostgreSQL database, its artifacts in the bucket,
which it proxies (clients send artifacts to the server and need no S3 credentials).

Basic-auth needs `mlflow[auth]`, an admin password (`MLFLOW_AUTH_ADMIN_PASSWORD`, read when the
admin user is first created), a secret key for its forms (`MLFLOW_FLASK_SERVER_SECRET_KEY`) and
a configuration file (`MLFLOW_AUTH_CONFIG_PATH`: where the users are kept, what a new user may
do). A new user may only read (READ); the project's stages need EDIT on the experiments they
write to (`rnnlm`, `rnnlm-sequence`) and on the registered models they register (`rnnlm-*`), which
`grant_team_user` gives.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from rnnlm.team import processes

ADMIN = "admin"
_STARLETTE_WARNING = "ignore:starlette.middleware.wsgi is deprecated"
AUTH_CONFIG = """\
[mlflow]
# A new user may read everything and change nothing until granted more.
default_permission = READ
database_uri = {database_uri}
admin_username = {admin}
# The admin's password comes from MLFLOW_AUTH_ADMIN_PASSWORD, when the admin is first created.
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


@dataclass(frozen=True)
class TrackingServer:
    port: int
    backend_store_uri: str  # postgresql+psycopg2://...
    auth_database_uri: str
    artifacts_destination: str  # s3://bucket/prefix
    admin_password: str
    secret_key: str

    @property
    def url(self) -> str:
        return f"http://{processes.LOOPBACK}:{self.port}"

    def write_auth_config(self, path: Path) -> None:
        path.write_text(AUTH_CONFIG.format(database_uri=self.auth_database_uri, admin=ADMIN))
        path.chmod(0o600)  # it holds the database's password

    def start(self, auth_config: Path, log: Path, object_store: Mapping[str, str],
              workers: int = 2) -> int:
        """Start the server (settings with passwords in its environment, not its command
        line); its pid (`wait` until it answers). `object_store`: the S3 endpoint and
        credentials the server reaches the bucket with."""
        mlflow = Path(sys.executable).parent / "mlflow"
        command = [str(mlflow), "server", "--app-name", "basic-auth",
                   "--host", processes.LOOPBACK, "--port", str(self.port),
                   "--workers", str(workers)]
        env = {**os.environ, **object_store,
               "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri,
               "MLFLOW_ARTIFACTS_DESTINATION": self.artifacts_destination,
               "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
               "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
               "MLFLOW_FLASK_SERVER_SECRET_KEY": self.secret_key,
               # No GenAI job runner: the project's runs do not use it.
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
               # A Starlette module MLflow itself imports; nothing to act on here.
               "PYTHONWARNINGS": _STARLETTE_WARNING}
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
                     "MLFLOW_TRACKING_PASSWORD"):
            env.pop(name, None)
        return processes.start(command, log, env)

    def wait(self, pid: int, log: Path) -> None:
        processes.wait_until(lambda: processes.answers(f"{self.url}/health"),
                             "the MLflow server", pid, log, timeout=180)

    @contextlib.contextmanager
    def as_user(self, username: str, password: str) -> Iterator[None]:
        """MLflow's clients in this process send `username`'s credentials to this server."""
        names = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
        before = {name: os.environ.get(name) for name in names}
        os.environ.update(zip(names, (username, password), strict=True))
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def grant_team_user(self, username: str, password: str,
                        experiments: tuple[str, ...]) -> None:
        """(As the admin.) Create the user, the `experiments`, and give the user EDIT on them
        and on every registered model."""
        from mlflow import MlflowClient

        with self.as_user(ADMIN, self.admin_password), warnings.catch_warnings():
            # A Starlette module the auth client's imports bring in; nothing to act on here.
            warnings.filterwarnings("ignore", "starlette.middleware.wsgi is deprecated")
            from mlflow.server import get_app_client

            auth = get_app_client("basic-auth", tracking_uri=self.url)
            auth.create_user(username=username, password=password)
            client = MlflowClient(self.url)
            for name in experiments:
                found = client.get_experiment_by_name(name)
                experiment_id = (found.experiment_id if found is not None
                                 else client.create_experiment(name))
                auth.grant_user_permission(username, "experiment", experiment_id, "EDIT")
            auth.grant_user_permission(username, "registered_model", "*", "EDIT")
