"""Resuming a training (`train.resume: true`): what a checkpoint must share with the training
that continues it (`RunMetadata`, saved inside every checkpoint), the check that it does, and the
MLflow run to continue, found by the checksum of the checkpoint's weights the run is tagged with.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import MLFlowLogger

from rnnlm.checksums import weights_checksum
from rnnlm.errors import RnnlmError
from rnnlm.neural.checkpoints import read_checkpoint
from rnnlm.tracking.connection import tracking_uri
from rnnlm.tracking.records import find_run

LAST_CHECKPOINT_TAG = "last_checkpoint"  # the weights_checksum of the run's latest checkpoint
PREVIOUS_CHECKPOINT_TAG = "previous_checkpoint"  # and of the one before it


class RunMetadata(Callback):
    """What a resumed training must match, saved in every checkpoint (Lightning stores a
    callback's `state_dict` there): the checksum of the data and the settings outside the module's
    own hyperparameters (batches, seed, clipping...). Nothing volatile: the same training writes
    the same checkpoint. Each save tags the MLflow run with the checkpoint's `weights_checksum`,
    so that a resumed training finds the run to continue."""

    def __init__(self, data_checksum: str, settings: Mapping[str, Any]) -> None:
        self.data_checksum, self.settings = data_checksum, dict(settings)
        self._tagged: str | None = None  # the weights the run is tagged with as its last

    def state_dict(self) -> dict[str, Any]:
        return {"data_checksum": self.data_checksum, "settings": self.settings}

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        logger = trainer.logger
        if not (trainer.is_global_zero and isinstance(logger, MLFlowLogger)):
            return
        weights = weights_checksum(checkpoint["state_dict"])
        if weights != self._tagged:
            # Tagged before the file is written: if the process stops between this save and
            # the next file's, last.ckpt still holds the weights of the previous tag.
            run_id, client = str(logger.run_id), logger.experiment
            if self._tagged:
                client.set_tag(run_id, PREVIOUS_CHECKPOINT_TAG, self._tagged)
            client.set_tag(run_id, LAST_CHECKPOINT_TAG, weights)
            self._tagged = weights


def resume_point(last_checkpoint: Path, hyperparameters: Mapping[str, Any],
                 metadata: RunMetadata) -> str:
    """Check that `last_checkpoint` continues this very training; return the checksum of its
    weights, which its MLflow run carries as the `last_checkpoint` tag."""
    if not last_checkpoint.is_file():
        raise RnnlmError(f"train.resume is true but {last_checkpoint} does not exist: train "
                         "once with train.resume: false first")
    checkpoint = read_checkpoint(last_checkpoint)
    extra = checkpoint.get("callbacks", {}).get(RunMetadata.__qualname__, {})
    saved = {**checkpoint.get("hyper_parameters", {}), **extra.get("settings", {})}
    hyperparameters = {**hyperparameters, **metadata.settings}
    keys = {*saved, *hyperparameters}
    changed = sorted(k for k in keys if saved.get(k) != hyperparameters.get(k))
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} then, {hyperparameters.get(k)!r} now"
                            for k in changed)
        raise RnnlmError(f"cannot resume from {last_checkpoint}: it was trained with other "
                         f"settings ({details}). Set train.resume: false to start afresh")
    if extra.get("data_checksum") != metadata.data_checksum:
        raise RnnlmError(f"cannot resume from {last_checkpoint}: the token ids changed since "
                         "it was saved. Set train.resume: false to start afresh")
    return weights_checksum(checkpoint["state_dict"])


def resumed_run(last: Path, weights: str) -> str:
    """The MLflow run that wrote `last` (whose weights have the checksum `weights`): tagged with
    it as its last checkpoint, or as the one before if it stopped between two saves."""
    run_id = (find_run(LAST_CHECKPOINT_TAG, weights)
              or find_run(PREVIOUS_CHECKPOINT_TAG, weights))
    if run_id is None:
        raise RnnlmError(f"cannot resume from {last}: no run in the MLflow store "
                         f"{tracking_uri()!r} wrote it (tag {LAST_CHECKPOINT_TAG}). Point "
                         "MLFLOW_TRACKING_URI at the store it was trained with, or set "
                         "train.resume: false to start afresh")
    return run_id
