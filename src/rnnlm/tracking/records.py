"""How a run is recorded: its name, tags (model kind, data checksum, git commit, DVC experiment,
the process that owns it) and params, and how a stage finds the run that made a model (by the
checksum the run is tagged with: outputs that DVC tracks hold no run ids)."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlm.tracking.connection import connect, tracking_uri
from rnnlm.tracking.orphans import process_tags

if TYPE_CHECKING:
    import mlflow
    import numpy as np

MODEL_TAG = "model_checksum"  # checksum of the fitted model's files: finds the run that made them


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
