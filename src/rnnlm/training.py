"""Putting a training run together: the Trainer, its callbacks, and the MLflow run it logs to.

One MLflow run per training, opened before `fit` and closed by Lightning (FINISHED, or FAILED on
any exception inside `fit`); `recorded_training` also closes it as FAILED when anything around
`fit` fails, so no run is left RUNNING. A resumed training reopens the run its checkpoint names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import MLFlowLogger

from . import tracking
from .errors import RnnlmError

BEST = "best"
LAST = "last"


def checkpoint_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.ckpt"


def build_trainer(*, epochs: int, clip: float, patience: int, checkpoint_dir: Path,
                  logger: MLFlowLogger | None, accelerator: str = "auto",
                  devices: int | str = "auto", precision: str = "32", strategy: str = "auto",
                  num_nodes: int = 1,
                  progress: bool = True, callbacks: Sequence[Callback] = ()) -> pl.Trainer:
    # Saved after each validation: a checkpoint written inside on_train_epoch_end makes Lightning
    # resume mid-epoch and replay the wrong epoch's minibatches.
    checkpoints = ModelCheckpoint(dirpath=checkpoint_dir, filename=BEST, monitor="val_ppl",
                                  mode="min", save_top_k=1, save_last=True,
                                  enable_version_counter=False, save_on_train_epoch_end=False)
    extra: list[Callback] = [checkpoints, *callbacks]
    if patience > 0:
        extra.append(EarlyStopping(monitor="val_ppl", mode="min", patience=patience))
    if progress:
        # Redrawing the bar every step costs more than a small model's step does.
        extra.append(TQDMProgressBar(refresh_rate=25))
    return pl.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=devices,
        precision=precision,  # type: ignore[arg-type]
        strategy=strategy,
        num_nodes=num_nodes,
        gradient_clip_val=clip if clip > 0 else None,
        gradient_clip_algorithm="norm",
        logger=logger if logger is not None else False,
        callbacks=extra,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(checkpoint_dir.parent),
        # The data module shards the book's iterators by rank itself (a DistributedSampler would
        # reorder and pad them).
        use_distributed_sampler=False,
    )


def resume_point(last_checkpoint: Path, hyperparameters: Mapping[str, Any],
                 data_checksum: str, run_settings: Mapping[str, Any]) -> str | None:
    """Check that `last_checkpoint` continues this very training; return its MLflow run id."""
    if not last_checkpoint.is_file():
        raise RnnlmError(f"train.resume is true but {last_checkpoint} does not exist: train "
                         "once with train.resume: false first")
    checkpoint = torch.load(last_checkpoint, map_location="cpu", weights_only=True)
    extra = checkpoint.get("rnnlm", {})
    saved = {**checkpoint.get("hyper_parameters", {}), **extra.get("run_settings", {})}
    hyperparameters = {**hyperparameters, **run_settings}
    keys = {*saved, *hyperparameters}
    changed = sorted(k for k in keys if saved.get(k) != hyperparameters.get(k))
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} then, {hyperparameters.get(k)!r} now"
                            for k in changed)
        raise RnnlmError(f"cannot resume from {last_checkpoint}: it was trained with other "
                         f"settings ({details}). Set train.resume: false to start afresh")
    if extra.get("data_checksum") != data_checksum:
        raise RnnlmError(f"cannot resume from {last_checkpoint}: the token ids changed since "
                         "it was saved. Set train.resume: false to start afresh")
    return extra.get("mlflow_run_id")


class _StageLogger(MLFlowLogger):
    """Leaves closing the run to `recorded_training`, which knows whether the stage's work after
    `fit` (reports, artifacts) succeeded too; failures inside `fit` still close it as FAILED."""

    def finalize(self, status: str = "success") -> None:
        if status != "success":
            super().finalize(status)


@contextlib.contextmanager
def recorded_training(model_kind: str, description: str, params: Mapping[str, object],
                      checksum: str, run_id: str | None = None) -> Iterator[MLFlowLogger]:
    """An MLFlowLogger on a new run in the project's experiment, or on `run_id` (resuming)."""
    from mlflow import MlflowClient

    uri, _ = tracking.connect()
    logger = _StageLogger(experiment_name=tracking.experiment_name(), tracking_uri=uri,
                          run_name=tracking.run_name(description),
                          tags=tracking.run_tags(model_kind, checksum), run_id=run_id)
    client = MlflowClient(uri)
    if run_id is None:
        logger.log_hyperparams({key: tracking.param_text(v) for key, v in params.items()})
    else:
        try:
            client.update_run(run_id, status="RUNNING")  # it was FAILED when interrupted
        except Exception as exc:
            raise RnnlmError(f"cannot reopen MLflow run {run_id} to resume: {exc}") from None
    try:
        yield logger
    except BaseException:
        if client.get_run(logger.run_id).info.status == "RUNNING":
            client.set_terminated(logger.run_id, "FAILED")
        raise
    if client.get_run(logger.run_id).info.status == "RUNNING":
        client.set_terminated(logger.run_id, "FINISHED")
