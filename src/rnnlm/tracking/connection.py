"""Where every run is recorded: one MLflow store and one experiment for the whole project.

Default store: `sqlite:///<project root>/mlflow.db`, which needs no server. `MLFLOW_TRACKING_URI`
overrides it (a team's tracking server, another database). The project root is the main
repository even when DVC runs a stage in a temporary copy (`dvc exp run --queue` or `--temp` work
under `.dvc/tmp/exps/`): DVC passes the main root in `DVC_ROOT`, so queued experiments land in the
same store as runs from the repository itself.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from rnnlm.errors import RnnlmError, explains
from rnnlm.tracking.health import DAMAGE_SIGNS, check_sqlite_store, damaged
from rnnlm.tracking.orphans import close_orphaned_runs

DEFAULT_EXPERIMENT = "rnnlm"
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
_SQLITE = "sqlite:///"
_EXPERIMENT_WORKSPACES = (".dvc", "tmp", "exps")


def project_root(cwd: Path | None = None) -> Path:
    """The main repository's root, also from inside a DVC experiment's temporary copy."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    cwd = (cwd or Path.cwd()).resolve()
    parts = cwd.parts
    for i in range(len(parts) - len(_EXPERIMENT_WORKSPACES) + 1):
        if parts[i : i + len(_EXPERIMENT_WORKSPACES)] == _EXPERIMENT_WORKSPACES:
            return Path(*parts[:i])
    for directory in (cwd, *cwd.parents):
        if (directory / ".dvc").is_dir() or (directory / "dvc.yaml").is_file():
            return directory
    return cwd


def local_store_uri() -> str:
    """The project's own SQLite store, whatever MLFLOW_TRACKING_URI says."""
    return f"{_SQLITE}{project_root() / STORE_FILE}"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI`, or the project's SQLite store; a relative SQLite path is taken
    relative to the project root, not to whichever copy the stage runs in."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if not uri:
        return local_store_uri()
    if uri.startswith(_SQLITE) and not uri.startswith(_SQLITE + "/"):
        return f"{_SQLITE}{project_root() / uri.removeprefix(_SQLITE)}"
    return uri


def artifact_location(uri: str) -> str | None:
    """Artifacts beside a local store; a tracking server keeps its own artifact store."""
    if uri.split(":", 1)[0] in {"http", "https", "databricks"}:
        return None
    if uri.startswith(_SQLITE):
        return (Path(uri.removeprefix(_SQLITE)).parent / ARTIFACTS_DIR).as_uri()
    return (project_root() / ARTIFACTS_DIR).as_uri()


def experiment_name(part: str = "") -> str:
    """The project's experiment (`MLFLOW_EXPERIMENT_NAME`, default rnnlm), or one of its parts
    beside it (`rnnlm-sequence`: models of other data, whose runs would crowd its charts)."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    return f"{name}-{part}" if part else name


def ensure_experiment(uri: str, name: str) -> str:
    """The experiment's id, creating it with an absolute artifact location if needed."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(uri)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(uri))
    except MlflowException:
        # Two queued experiments may race to create it; the loser uses the winner's.
        existing = client.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id


_swept: set[str] = set()  # the stores whose orphaned runs this process has closed


def _project_experiments(uri: str) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = (client.get_experiment_by_name(name)
             for name in (experiment_name(), experiment_name("sequence")))
    return [e.experiment_id for e in found if e is not None]


def _this_program() -> str:
    """e.g. "stage train" under DVC, "rnnlm runs" from the command line."""
    if os.environ.get("DVC_STAGE"):
        return f"stage {os.environ['DVC_STAGE']}"
    if sys.argv and sys.argv[0].startswith("rnnlm "):  # named so by rnnlm.cli
        return sys.argv[0]
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return f"python -m {spec.name}" if spec else f"process {os.getpid()}"


_ENDPOINT = re.compile(r"endpoint (/\S+)")


@explains
def refusal(exc: BaseException) -> RnnlmError | None:
    """A tracking server's refusal (HTTP 401: no or wrong credentials; 403: a permission the
    user lacks) as one line naming what is missing and who grants it; None for anything else.
    Anything that talks to the store lets the refusal through and its command turns it into this
    line (`pipeline._stage.run_stage`, `rnnlm.errors.exit_with_message`, through
    `rnnlm.errors.explained`)."""
    exceptions = sys.modules.get("mlflow.exceptions")
    if exceptions is None or not isinstance(exc, exceptions.MlflowException):
        return None
    found = _ENDPOINT.search(exc.message)
    request = f" on {found.group(1)}" if found else ""
    uri, user = tracking_uri(), os.environ.get("MLFLOW_TRACKING_USERNAME")
    if exc.error_code == "UNAUTHENTICATED":
        if not user:
            return RnnlmError(
                f"the MLflow server {uri} requires credentials (401{request}). Fix: set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to your user's (for the "
                "stack of `make team-up`: eval \"$(rnnlm team env)\")")
        return RnnlmError(
            f"the MLflow server {uri} refused the password of user {user!r} (401{request}). "
            "Fix: check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD")
    if exc.error_code == "PERMISSION_DENIED":
        return RnnlmError(
            f"the MLflow server {uri} denied user {user!r} a change (403{request}). Fix: ask "
            f"its admin for EDIT on the experiments {experiment_name()!r} and "
            f"{experiment_name('sequence')!r} and on each registered model "
            f"{experiment_name()}-* (see docs/teams.md)")
    return None


def connect(experiment: str | None = None) -> tuple[str, str]:
    """(tracking URI, experiment id) of the project's store and experiment (or `experiment`); a
    store that cannot be used is a clear error, raised before any work is done. The first
    connection of a process closes the runs its dead predecessors left RUNNING (`orphans`)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import DatabaseError

    uri = tracking_uri()
    if uri not in _swept:
        check_sqlite_store(uri)
    try:
        experiment_id = ensure_experiment(uri, experiment or experiment_name())
        if uri not in _swept:
            _swept.add(uri)
            close_orphaned_runs(MlflowClient(uri), _project_experiments(uri), _this_program())
        return uri, experiment_id
    except DatabaseError as exc:  # damage the quick check did not see
        if not (uri.startswith("sqlite:") and any(s in str(exc.orig) for s in DAMAGE_SIGNS)):
            raise
        raise damaged(uri, str(exc.orig)) from None
    except MlflowException as exc:
        if uri.startswith("sqlite:") and any(sign in exc.message for sign in DAMAGE_SIGNS):
            raise damaged(uri, exc.message.splitlines()[0]) from None
        refused = refusal(exc)
        if refused is not None:
            raise refused from None
        raise RnnlmError(
            f"cannot use the MLflow store {uri!r}: {exc.message}\n"
            "Fix: unset MLFLOW_TRACKING_URI to use the project's sqlite:///mlflow.db, or point it "
            "at a reachable tracking server or database") from None
