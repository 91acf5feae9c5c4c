"""Putting a training together: the Lightning Trainer, its callbacks and checkpoints, and the
check that a resumed training continues the very one its last checkpoint saved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from rnnlm.errors import RnnlmError
from rnnlm.neural.options import TrainerOptions

BEST = "best"
LAST = "last"


def checkpoint_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.ckpt"


class RunMetadata(Callback):
    """What a resumed training must match, and the MLflow run it continues, saved in every
    checkpoint (Lightning stores a callback's `state_dict` there): the checksum of the data and
    the settings outside the module's own hyperparameters (batches, seed, clipping...)."""

    def __init__(self, data_checksum: str, settings: Mapping[str, Any]) -> None:
        self.data_checksum, self.settings = data_checksum, dict(settings)
        self.mlflow_run_id: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # None on the ranks without a logger (only rank 0 opens the run).
        if isinstance(trainer.logger, MLFlowLogger) and trainer.global_rank == 0:
            self.mlflow_run_id = trainer.logger.run_id

    def state_dict(self) -> dict[str, Any]:
        return {"data_checksum": self.data_checksum, "settings": self.settings,
                "mlflow_run_id": self.mlflow_run_id}


def build_trainer(options: TrainerOptions, checkpoint_dir: Path,
                  logger: MLFlowLogger | None = None, progress: bool = True,
                  callbacks: Sequence[Callback] = ()) -> pl.Trainer:
    """A Trainer whose checkpoints (`best.ckpt` by val_ppl, `last.ckpt`) go to `checkpoint_dir`;
    a configuration Lightning refuses is a RnnlmError naming the options."""
    # Saved after each validation: a checkpoint written inside on_train_epoch_end makes Lightning
    # resume mid-epoch and replay the wrong epoch's minibatches.
    checkpoints = ModelCheckpoint(dirpath=checkpoint_dir, filename=BEST, monitor="val_ppl",
                                  mode="min", save_top_k=1, save_last=True,
                                  enable_version_counter=False, save_on_train_epoch_end=False)
    extra: list[Callback] = [checkpoints, *callbacks]
    o = options
    if o.patience > 0:
        extra.append(EarlyStopping(monitor="val_ppl", mode="min", patience=o.patience))
    if progress:
        # Redrawing the bar every step costs more than a small model's step does.
        extra.append(TQDMProgressBar(refresh_rate=25))
    try:
        trainer = pl.Trainer(
            max_epochs=o.epochs,
            accelerator=o.accelerator,
            devices=o.devices,
            precision=o.precision,
            strategy=o.strategy,
            num_nodes=o.num_nodes,
            gradient_clip_val=o.clip if o.clip > 0 else None,
            gradient_clip_algorithm="norm",
            logger=logger if logger is not None else False,
            callbacks=extra,
            enable_progress_bar=progress,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(checkpoint_dir.parent),
            # The data module shards the book's iterators by rank itself (a DistributedSampler
            # would reorder and pad them).
            use_distributed_sampler=False,
        )
    except (MisconfigurationException, ValueError, RuntimeError) as exc:
        raise RnnlmError(f"Lightning refuses train.accelerator={o.accelerator!r}, "
                         f"devices={o.devices!r}, precision={o.precision!r}, "
                         f"strategy={o.strategy!r}, num_nodes={o.num_nodes}: {exc}") from None
    if isinstance(trainer.accelerator, CPUAccelerator) and o.precision != "32":
        raise RnnlmError(f"train.precision {o.precision!r} needs a GPU (on this CPU it is "
                         "emulated or unsupported, e.g. LSTM in bfloat16): use \"32\"")
    return trainer


def resume_point(last_checkpoint: Path, hyperparameters: Mapping[str, Any],
                 metadata: RunMetadata) -> str | None:
    """Check that `last_checkpoint` continues this very training; return its MLflow run id."""
    if not last_checkpoint.is_file():
        raise RnnlmError(f"train.resume is true but {last_checkpoint} does not exist: train "
                         "once with train.resume: false first")
    checkpoint = torch.load(last_checkpoint, map_location="cpu", weights_only=True)
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
    return extra.get("mlflow_run_id")
