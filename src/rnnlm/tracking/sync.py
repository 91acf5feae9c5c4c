"""Bringing the MLflow store in line with the workspace: one idempotent step.

For each fitted model of the workspace (the network and the n-gram), keyed by its model and data
checksums:
- the run that fitted it is found (tag `model_checksum`, the same `data_checksum`, FINISHED;
  this DVC experiment's own run first, then the newest), or, when the store has none (a fresh
  clone, a pull, a new server, an emptied store), recorded from the repository's files: its
  parameters, per-epoch history, val figures, artifacts and logged MLflow Model, tagged
  `recorded_by: sync`;
- the evaluate stage's figures and samples of this very model are added to that run where they
  differ;
- the model is registered under the registry's rule (`rnnlm.serving.registry`).

It retrains and rescores nothing and writes only what is missing or different, so a second sync
changes nothing. The evaluate stage ends with it; `make repro` runs it after `dvc repro`, which
skips evaluate when its outputs are already those of dvc.lock (a fresh clone reproduces them
byte for byte). A DVC stage that always ran would make `dvc status` never clean.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from rnnlm.checksums import files_checksum
from rnnlm.layout import IDS_DIR, ids_path
from rnnlm.serving.logged_model import log_language_model
from rnnlm.serving.registry import Candidate, logged_model_id, register
from rnnlm.text.splits import SPLITS
from rnnlm.tracking import connection, records
from rnnlm.tracking.workspace import Evaluation, FittedModel

RECORDED_BY_TAG = "recorded_by"  # "sync" on a run recorded from the repository's files
SAMPLES_TAG = "samples_checksum"  # of the samples.md the run holds
_T = TypeVar("_T")
_BATCH = 100  # params per log_batch call (MLflow's limit; metrics allow 1,000)


@dataclass
class Outcome:
    """What the sync found and did for one model."""

    role: str
    run_id: str
    recorded: bool = False  # the run was recorded from the repository's files
    changed: list[str] = field(default_factory=list)  # what it wrote to an existing run
    version: ModelVersion | None = None

    def line(self, model: FittedModel) -> str:
        done = ("recorded from the repository" if self.recorded
                else f"updated ({', '.join(self.changed)})" if self.changed else "in line")
        text = f"{self.role} ({model.record.kind}): run {self.run_id} {done}"
        if self.version is not None:
            aliases = ", ".join(self.version.aliases) or "no alias"
            text += f"; {self.version.name} version {self.version.version} ({aliases})"
        elif model.evaluation is None:
            text += "; not evaluated yet (run `dvc repro`), so not registered"
        else:
            text += "; not registered (see the warning above)"
        return text


def in_workspace() -> bool:
    """Whether this process runs in the repository itself, not in a queued experiment's copy."""
    return Path.cwd().resolve() == connection.project_root()


def sync(models: Sequence[FittedModel], workspace: bool | None = None) -> list[Outcome]:
    """Bring the project's store in line with `models` (see the module's docstring)."""
    uri, experiment_id = connection.connect()
    client = MlflowClient(uri)
    workspace = in_workspace() if workspace is None else workspace
    return [sync_model(client, experiment_id, model, workspace) for model in models]


def sync_model(client: MlflowClient, experiment_id: str, model: FittedModel, workspace: bool
               ) -> Outcome:
    run = recorded_run(client, experiment_id, model)
    if run is None:
        recorded = one_recorded_run(client, experiment_id, model,
                                    record_run(client, experiment_id, model))
        outcome = Outcome(model.role, recorded, recorded=True)
    else:
        outcome = Outcome(model.role, run.info.run_id)
        if logged_model_id(client, run.info.run_id) is None:
            log_language_model(run.info.run_id, model.files, model.record.description)
            outcome.changed.append("model")
    if model.evaluation is not None:
        outcome.changed += log_evaluation(client, outcome.run_id, model.evaluation)
        outcome.version = register(client, outcome.run_id, candidate(model), workspace)
    return outcome


def recorded_run(client: MlflowClient, experiment_id: str, model: FittedModel) -> Run | None:
    """The finished run that fitted this model on this data: this DVC experiment's own first,
    then the newest. Tags are matched here, not in the filter string, but for the checksum."""
    record = model.record
    found = client.search_runs([experiment_id],
                               f"tags.{records.MODEL_TAG} = "
                               f"{records.checksum_literal(record.model_checksum)}",
                               max_results=1000)
    exp = os.environ.get("DVC_EXP_NAME")
    matching = [r for r in found if r.info.status == "FINISHED"
                and r.data.tags.get("data_checksum") == record.data_checksum]
    matching.sort(key=lambda r: (bool(exp) and r.data.tags.get("dvc_exp_name") == exp,
                                 r.info.start_time), reverse=True)
    return matching[0] if matching else None


def record_run(client: MlflowClient, experiment_id: str, model: FittedModel) -> str:
    """A finished run holding what the fitting stage's run held, from the repository's files;
    deleted again if anything fails, so no half-recorded run is ever found."""
    record = model.record
    tags = {**records.run_tags(record.kind, record.data_checksum),
            records.MODEL_TAG: record.model_checksum, RECORDED_BY_TAG: "sync", **model.tags}
    run = client.create_run(experiment_id, run_name=records.run_name(record.name), tags=tags)
    run_id = run.info.run_id
    try:
        params = [Param(k, records.param_text(v)) for k, v in record.params.items()]
        for start in range(0, len(params), _BATCH):
            client.log_batch(run_id, params=params[start:start + _BATCH])
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, 0) for key, value in record.metrics.items()]
        metrics += [Metric(key, float(value), now, int(row["epoch"]))
                    for row in model.history for key, value in row.items() if key != "epoch"]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start:start + 1000])
        for path in model.artifacts:
            client.log_artifact(run_id, str(path))
        if _ids_are(record.data_checksum):
            ids = np.load(ids_path("train"), mmap_mode="r")
            retrying(lambda: records.log_dataset(
                run_id, ids, record.dataset["name"], record.dataset["source"],
                record.data_checksum))
        log_language_model(run_id, model.files, record.description)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.delete_run(run_id)
        raise
    return run_id


def one_recorded_run(client: MlflowClient, experiment_id: str, model: FittedModel, own: str,
                     wait_s: float = 300.0) -> str:
    """The run to keep when several syncs recorded the same model at once (teammates on a new
    server): the earliest started. A later one deletes its own once the earliest is finished;
    if that one fails or never finishes, its own stays."""
    record = model.record
    while True:
        found = client.search_runs(
            [experiment_id], f"tags.{records.MODEL_TAG} = "
            f"{records.checksum_literal(record.model_checksum)}", max_results=1000)
        racing = sorted((r for r in found if r.data.tags.get(RECORDED_BY_TAG) == "sync"
                         and r.data.tags.get("data_checksum") == record.data_checksum
                         and r.info.status in ("RUNNING", "FINISHED")),
                        key=lambda r: (r.info.start_time, r.info.run_id))
        first = racing[0] if racing else None
        if first is None or first.info.run_id == own:
            return own
        if first.info.status == "FINISHED":
            client.delete_run(own)
            return first.info.run_id
        if wait_s <= 0:
            return own
        time.sleep(0.5)
        wait_s -= 0.5


def retrying(action: Callable[[], _T], attempts: int = 5) -> _T:
    """`action()`, again after a short pause when the store refuses it: two syncs writing the
    same tag or creating the same dataset at once make the store's unique key refuse one."""
    for attempt in range(attempts - 1):
        try:
            return action()
        except MlflowException:
            time.sleep(0.2 * (attempt + 1))
    return action()


def _ids_are(checksum: str) -> bool:
    paths = [ids_path(split) for split in SPLITS]
    return IDS_DIR.is_dir() and all(p.is_file() for p in paths) and (
        files_checksum(paths) == checksum)


def log_evaluation(client: MlflowClient, run_id: str, evaluation: Evaluation) -> list[str]:
    """evaluate's figures and samples on the run, where they are not there already. Two syncs
    writing the same tag at once make one of them fail on the store's unique key: it reads the
    run again and writes what is still missing."""
    return retrying(lambda: _log_evaluation(client, run_id, evaluation))


def _log_evaluation(client: MlflowClient, run_id: str, evaluation: Evaluation) -> list[str]:
    run = client.get_run(run_id)
    changed = [key for key, value in evaluation.metrics.items()
               if run.data.metrics.get(key) != float(value)]
    for key in changed:
        client.log_metric(run_id, key, float(evaluation.metrics[key]))
    samples = hashlib.sha256(evaluation.samples.encode()).hexdigest()
    if run.data.tags.get(SAMPLES_TAG) != samples:
        client.log_text(run_id, evaluation.samples, "samples.md")
        client.set_tag(run_id, SAMPLES_TAG, samples)
        changed.append("samples")
    return changed


def candidate(model: FittedModel) -> Candidate:
    assert model.evaluation is not None
    return Candidate(kind=model.record.kind, checksum=model.record.model_checksum,
                     data_checksum=model.record.data_checksum, level=model.level,
                     vocab_size=model.vocab_size, figures=model.evaluation.figures,
                     description=model.record.description)


def report(models: Iterable[FittedModel], outcomes: Iterable[Outcome]) -> str:
    return "\n".join(o.line(m) for m, o in zip(models, outcomes, strict=True))
