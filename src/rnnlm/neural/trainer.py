"""Putting a training together: the Lightning Trainer with its callbacks, checkpoints, progress bar
and threads (checkpoints themselves: `checkpoints`; resuming: `resume`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import Callback, EarlyStopping, TQDMProgressBar
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from rnnlm import lightning_output  # noqa: F401  (filters what Lightning prints)
from rnnlm.errors import RnnlmError
from rnnlm.neural.checkpoints import BEST, AtomicCheckpointIO, PortableCheckpoint
from rnnlm.neural.options import TrainerOptions
from rnnlm.neural.threads import ThreadShare


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
        if o.precision == "16-mixed":
            raise RnnlmError("train.precision '16-mixed' needs a GPU (float16 autocast is for "
                             "GPUs): use \"32\", or \"bf16-mixed\" on a CPU with bfloat16 "
                             "instructions (see docs/performance.md)")
        if o.threads != "auto":
            torch.set_num_threads(o.threads)
    return trainer
