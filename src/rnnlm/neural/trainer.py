"""Putting a training together: the Lightning Trainer, its callbacks and checkpoints, and the
check that a resumed training continues the very one its last checkpoint saved."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch import Tensor

from rnnlm import lightning_output  # noqa: F401  (filters what Lightning prints)
from rnnlm.errors import RnnlmError
from rnnlm.neural.checkpoints import AtomicCheckpointIO
from rnnlm.neural.options import TrainerOptions
from rnnlm.neural.threads import ThreadShare

BEST = "best"
LAST = "last"


def checkpoint_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.ckpt"


LAST_CHECKPOINT_TAG = "last_checkpoint"  # the weights_checksum of the run's latest checkpoint
PREVIOUS_CHECKPOINT_TAG = "previous_checkpoint"  # and of the one before it


def weights_checksum(state_dict: Mapping[str, Tensor]) -> str:
    """sha256 of a model's weights (names and values, in order): the tag that ties a checkpoint
    to the MLflow run that wrote it, without writing the run's id into the checkpoint."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


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


class EpochProgressBar(TQDMProgressBar):
    """Lightning's bar, told what it cannot find out itself: how many minibatches this epoch has
    (the book's iterators are samplers without a length) and how many epochs there are. The
    logger's version (`v_num`, an MLflow run id here) is left out."""

    @property
    def total_train_batches(self) -> int | float:
        count = getattr(getattr(self.trainer, "datamodule", None), "minibatches", None)
        return count(self.trainer.current_epoch) if count else super().total_train_batches

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(
            f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                    ) -> dict[str, int | str | float | dict[str, float]]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


class PortableCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, whose state (saved in every checkpoint) names its files
    relative to the working directory rather than absolutely: the same training in another clone
    writes the same bytes, so its `dvc.lock` entry does not depend on where the clone lies."""

    _PATHS = ("dirpath", "best_model_path", "kth_best_model_path", "last_model_path")

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for key in self._PATHS:
            if state.get(key):
                state[key] = os.path.relpath(state[key])
        state["best_k_models"] = {os.path.relpath(path): score
                                  for path, score in state["best_k_models"].items()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        for key in self._PATHS:
            if state.get(key):
                state[key] = os.path.abspath(state[key])
        state["best_k_models"] = {os.path.abspath(path): score
                                  for path, score in state.get("best_k_models", {}).items()}
        super().load_state_dict(state)


def build_trainer(options: TrainerOptions, checkpoint_dir: Path,
                  logger: MLFlowLogger | None = None, progress: bool = True,
                  callbacks: Sequence[Callback] = (),
                  checkpoint_saved: Callable[[Path], None] | None = None) -> pl.Trainer:
    """A Trainer whose checkpoints (`best.ckpt` by val_ppl, `last.ckpt`) go to `checkpoint_dir`,
    each written atomically (`checkpoint_saved(path)` is called after each); a configuration
    Lightning refuses is a RnnlmError naming the options."""
    # Saved after each validation: a checkpoint written inside on_train_epoch_end makes Lightning
    # resume mid-epoch and replay the wrong epoch's minibatches.
    checkpoints = PortableCheckpoint(dirpath=checkpoint_dir, filename=BEST, monitor="val_ppl",
                                     mode="min", save_top_k=1, save_last=True,
                                     enable_version_counter=False, save_on_train_epoch_end=False)
    extra: list[Callback] = [checkpoints, *callbacks]
    o = options
    if o.patience > 0:
        extra.append(EarlyStopping(monitor="val_ppl", mode="min", patience=o.patience))
    if o.threads == "auto":
        extra.append(ThreadShare())  # on a CPU only
    if progress:
        # Redrawing the bar every step costs more than a small model's step does.
        extra.append(EpochProgressBar(refresh_rate=25))
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
            plugins=[AtomicCheckpointIO(checkpoint_saved)],
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
    if isinstance(trainer.accelerator, CPUAccelerator):
        if o.precision != "32":
            raise RnnlmError(f"train.precision {o.precision!r} needs a GPU (on this CPU it is "
                             "emulated or unsupported, e.g. LSTM in bfloat16): use \"32\"")
        if o.threads != "auto":
            torch.set_num_threads(o.threads)
    return trainer


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint, read with `weights_only=True` (no arbitrary pickles); a missing
    or damaged file (a truncated save, another format) is a RnnlmError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RnnlmError(f"no checkpoint at {path}: run `dvc repro train` first") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise RnnlmError(f"{path} is not a readable checkpoint (truncated or damaged: {exc}). "
                         "Restore it (`dvc checkout models/rnn`) or train again with "
                         "train.resume: false") from None


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
