"""The MLflow run of a training, as a Lightning logger.

One MLflow run per training. The logger opens it (or, resuming, reopens the run tagged with the
checkpoint's weights) only when first used, inside `recorded_training`, so a Trainer can be built
with it, and refuse its options, before any run exists. Lightning closes the run FAILED on an
exception inside `fit`; `recorded_training` closes it FAILED when anything around `fit` fails,
and FINISHED only once the stage's work after `fit` (reports, artifacts) succeeded too, so no run
is left RUNNING.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from mlflow import MlflowClient
from pytorch_lightning.loggers import MLFlowLogger

from rnnlm.errors import RnnlmError
from rnnlm.tracking import connection, orphans, records


class _StageLogger(MLFlowLogger):
    """Leaves closing a successful run to `recorded_training`."""

    def finalize(self, status: str = "success") -> None:
        if status != "success":
            super().finalize(status)


def training_logger(model_kind: str, description: str, checksum: str,
                    run_id: str | None = None) -> MLFlowLogger:
    """A logger on a new run in the project's experiment, or on `run_id` (resuming)."""
    uri = connection.tracking_uri()
    return _StageLogger(experiment_name=connection.experiment_name(), tracking_uri=uri,
                        artifact_location=connection.artifact_location(uri),
                        run_name=records.run_name(description),
                        tags=records.run_tags(model_kind, checksum), run_id=run_id)


@contextlib.contextmanager
def recorded_training(logger: MLFlowLogger, params: Mapping[str, object],
                      resumed_run: str | None = None) -> Iterator[str]:
    """Open the logger's run (logging `params` on a new run; `resumed_run`: the run the logger
    was made for, reopened) and yield its id; close it FINISHED after the block, FAILED if the
    block fails."""
    uri, _ = connection.connect()  # the experiment, with its artifact location, before the run
    client = MlflowClient(uri)
    if resumed_run is not None:
        try:
            # It was closed FAILED or KILLED when interrupted; this process carries it on now.
            client.update_run(resumed_run, status="RUNNING")
            for key, value in orphans.process_tags().items():
                client.set_tag(resumed_run, key, value)
            if orphans.KILLED_TAG in client.get_run(resumed_run).data.tags:
                client.delete_tag(resumed_run, orphans.KILLED_TAG)
        except Exception as exc:
            raise RnnlmError(f"cannot reopen MLflow run {resumed_run} to resume: {exc}") from None
    else:
        logger.log_hyperparams({key: records.param_text(v) for key, v in params.items()})
    run_id = str(logger.run_id)
    try:
        yield run_id
    except BaseException:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "FAILED")
        raise
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, "FINISHED")
