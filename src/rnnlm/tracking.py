"""Where every run is recorded: one MLflow store and one experiment for the whole project.

Default store: `sqlite:///<project root>/mlflow.db`, which needs no server. `MLFLOW_TRACKING_URI`
overrides it (a team's tracking server, another database). The project root is the main
repository even when DVC runs a stage in a temporary copy (`dvc exp run --queue` or `--temp` work
under `.dvc/tmp/exps/`): DVC passes the main root in `DVC_ROOT`, so queued experiments land in the
same store as runs from the repository itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlm.errors import RnnlmError
from rnnlm.orphans import close_orphaned_runs, process_tags
from rnnlm.store.health import DAMAGE_SIGNS, check_sqlite_store, damaged

if TYPE_CHECKING:
    import mlflow
    import numpy as np

DEFAULT_EXPERIMENT = "rnnlm"
MODEL_TAG = "model_checksum"  # checksum of the fitted model's files: finds the run that made them
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
    """e.g. "stage train" under DVC, "python -m rnnlm.runs" otherwise."""
    if os.environ.get("DVC_STAGE"):
        return f"stage {os.environ['DVC_STAGE']}"
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return f"python -m {spec.name}" if spec else f"process {os.getpid()}"


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
        raise RnnlmError(
            f"cannot use the MLflow store {uri!r}: {exc.message}\n"
            "Fix: unset MLFLOW_TRACKING_URI to use the project's sqlite:///mlflow.db, or point it "
            "at a reachable tracking server or database") from None


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("DVC_EXP_BASELINE_REV")
    return out.stdout.strip()


def find_run(tag: str, value: str, experiment: str | None = None) -> str | None:
    """The id of the newest run in the experiment tagged `tag` = `value` (a checksum), or None.
    Outputs that DVC tracks hold no run ids (they would change at every run); a stage finds the
    run that made a model by the checksum the run is tagged with. Only the checksum goes into
    the filter string; the DVC experiment's name, which a user chose, is matched here."""
    from mlflow import MlflowClient

    uri, experiment_id = connect(experiment)
    runs = MlflowClient(uri).search_runs(
        [experiment_id], filter_string=f"tags.{tag} = {checksum_literal(value)}",
        order_by=["attributes.start_time DESC"], max_results=1000)
    # The same parameters give the same model: prefer this DVC experiment's own run.
    exp = os.environ.get("DVC_EXP_NAME")
    own = [r for r in runs if exp and r.data.tags.get("dvc_exp_name") == exp]
    return (own or runs)[0].info.run_id if runs else None


def checksum_literal(value: str) -> str:
    """`value` quoted for an MLflow filter string, which has no escapes: only checksums (hex
    digits) are ever placed in one; anything else is matched in Python."""
    if not re.fullmatch(r"[0-9a-f]{1,128}", value):
        raise ValueError(f"not a checksum: {value!r}")
    return f"'{value}'"


def log_dataset(run_id: str, ids: np.ndarray, name: str, source: str, checksum: str) -> None:
    """Record the training ids as the run's dataset input (the UI's Dataset column), under the
    same checksum as the `data_checksum` tag."""
    from mlflow import MlflowClient
    from mlflow.data.numpy_dataset import from_numpy
    from mlflow.entities import DatasetInput, InputTag

    dataset = from_numpy(ids, source=source, name=name, digest=checksum[:10])
    context = InputTag(key="mlflow.data.context", value="training")
    MlflowClient(tracking_uri()).log_inputs(
        run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), [context])])


def data_checksum(paths: Iterable[Path]) -> str:
    """sha256 over the files' bytes in order: the same data gives the same tag for every model."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def run_tags(model_kind: str, checksum: str) -> dict[str, str]:
    tags = {"model_kind": model_kind, "data_checksum": checksum, **process_tags()}
    commit = git_commit()
    if commit:
        # The second name is the one MLflow's UI shows as the run's source version.
        tags["git_commit"] = tags["mlflow.source.git.commit"] = commit
    for env, tag in (("DVC_EXP_NAME", "dvc_exp_name"), ("DVC_STAGE", "dvc_stage")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    return tags


def run_name(description: str) -> str:
    """e.g. 'ngram-kneser_ney-3', suffixed with the DVC experiment's name when there is one."""
    exp = os.environ.get("DVC_EXP_NAME")
    return f"{description} ({exp})" if exp else description


@contextlib.contextmanager
def recorded_run(model_kind: str, description: str, params: Mapping[str, object],
                 checksum: str, experiment: str | None = None) -> Iterator[mlflow.ActiveRun]:
    """An MLflow run in the project's experiment with its params and tags logged.

    An exception inside the block marks the run FAILED (MLflow's own context manager does it),
    so no crash leaves a run RUNNING.
    """
    import mlflow

    uri, experiment_id = connect(experiment)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name(description),
                          tags=run_tags(model_kind, checksum)) as run:
        mlflow.log_params({key: param_text(value) for key, value in params.items()})
        yield run


def param_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(param_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
