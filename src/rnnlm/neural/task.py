"""The training side: a LightningModule holding the step logic and the carried state.

Sequential partitioning carries the hidden state across minibatches, detached at every step
(truncated backpropagation through time), and resets it at the start of every epoch and of every
evaluation pass. Random sampling starts every minibatch from a fresh state. Lightning keeps
automatic optimisation, so the Trainer's `gradient_clip_val` clips by global norm.

Per-epoch figures (train and val perplexity, tokens, learning rate) are accumulated on the
device without a host sync per step, kept in `history` (saved in checkpoints, so a resumed run
keeps its past epochs) and sent to the logger with the epoch as the step, together with the
epoch's throughput (`tokens_per_s`), which is a timing and so stays out of `history` and of every
file DVC tracks.

A training whose loss turns non-finite (`NonFiniteLoss`), or whose validation perplexity after an
epoch is no better than the uniform model's (`TrainingDiverged`), stops with a RnnlmError.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.trainer.states import TrainerFn
from torch import Tensor

from rnnlm.errors import RnnlmError
from rnnlm.neural.models import State, build_model, detach_state
from rnnlm.neural.options import Optimizer, Schedule
from rnnlm.scoring import from_nll

# On an accelerator a finite-loss check syncs with the host, so it runs every this many steps
# (the first bad step is still named exactly); on a CPU it is free and runs every step.
CHECK_EVERY_ON_ACCELERATOR = 50


class NonFiniteLoss(RnnlmError):
    pass


class TrainingDiverged(RnnlmError):
    """A validation pass inside `fit` scored no better than the uniform model (perplexity V, the
    vocabulary size) or not at all (an infinite or NaN loss): the training is refused, so that
    no such model is saved, reported or registered."""


class LanguageModelTask(pl.LightningModule):
    def __init__(self, vocab_size: int, model: dict[str, Any], optimizer: Optimizer = "adam",
                 lr: float = 0.002, momentum: float = 0.0, weight_decay: float = 0.0,
                 schedule: Schedule = "none", carry_state: bool = True) -> None:
        super().__init__()
        # Logged explicitly by the training code (flat MLflow params), not by Lightning.
        self.save_hyperparameters(logger=False)
        self.vocab_size = vocab_size
        self.model = build_model(vocab_size=vocab_size, **model)
        self.carry_state = carry_state
        self.history: list[dict[str, float]] = []
        self._state: State | None = None

    # --- shared by training and evaluation -------------------------------------------------

    def forward(self, inputs: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.model.initial_state(inputs.shape[0], inputs.device)
        return self.model(inputs, state)

    def _nll(self, logits: Tensor, labels: Tensor, reduction: str) -> Tensor:
        return F.cross_entropy(logits.reshape(-1, self.vocab_size).float(), labels.reshape(-1),
                               reduction=reduction)

    # --- training ------------------------------------------------------------------------

    def on_train_epoch_start(self) -> None:
        self._state = None  # a fresh state every epoch
        self._train_nll = torch.zeros((), dtype=torch.float64, device=self.device)
        self._train_tokens = 0
        self._first_bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self._steps = torch.zeros((), dtype=torch.long, device=self.device)
        # The rate this epoch trains with: epoch-interval schedulers step before validation ends.
        self._epoch_lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self._epoch_started = time.perf_counter()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, labels = batch
        state = self._state if self.carry_state else None
        logits, state = self(inputs, state)
        # Truncated BPTT: the next minibatch starts from this state but not through its graph.
        self._state = detach_state(state) if self.carry_state else None
        loss = self._nll(logits, labels, "mean")
        self._train_nll.add_(loss.detach(), alpha=labels.numel())
        self._train_tokens += labels.numel()
        self._check_finite(loss, batch_idx)
        return loss

    def _check_finite(self, loss: Tensor, batch_idx: int) -> None:
        if self.device.type == "cpu":
            if not torch.isfinite(loss):
                self._first_bad_step.fill_(batch_idx)
                self._raise_if_bad()
            return
        # On the device, with no host copy: remember the first bad step, look every few steps.
        bad = ~torch.isfinite(loss.detach())
        self._first_bad_step = torch.where(bad & (self._first_bad_step < 0), self._steps,
                                           self._first_bad_step)
        self._steps += 1
        if batch_idx % CHECK_EVERY_ON_ACCELERATOR == 0:
            self._raise_if_bad()

    def _raise_if_bad(self) -> None:
        step = int(self._first_bad_step)
        if step >= 0:
            raise NonFiniteLoss(
                f"the training loss became non-finite at epoch {self.current_epoch + 1}, "
                f"step {step + 1} of that epoch: lower train.lr, or keep gradient clipping "
                f"on (train.clip > 0)")

    # --- evaluation (the scoring protocol) ----------------------------------------------------

    def _fitting(self) -> bool:
        """True for the validation passes inside `fit` (not `validate`, not the sanity check)."""
        return self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking

    def on_validation_epoch_start(self) -> None:
        if self._fitting():
            self._raise_if_bad()
            self._train_seconds = time.perf_counter() - self._epoch_started
        self._eval_state: State | None = None  # every evaluation pass starts at the split's start
        self._eval_nll = torch.zeros((), dtype=torch.float64, device=self.device)
        self._eval_tokens = 0

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        inputs, labels = batch
        logits, state = self(inputs, self._eval_state)
        self._eval_state = state
        self._eval_nll += self._nll(logits, labels, "sum").double()
        self._eval_tokens += labels.numel()

    def _summed_over_ranks(self, *values: Tensor | float) -> list[float]:
        """Each value summed over the data-parallel processes (itself with one process)."""
        stacked = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=self.device)
                               for v in values])
        return self.trainer.strategy.reduce(stacked, reduce_op="sum").tolist()

    def on_validation_epoch_end(self) -> None:
        # Sums, not a mean of per-rank perplexities: the split is scored once, over all ranks.
        nll, tokens = self._summed_over_ranks(self._eval_nll, self._eval_tokens)
        val_ppl = from_nll(nll, int(tokens))
        # For checkpointing, early stopping and the progress bar; the logger gets it below. Every
        # rank holds the same value already; sync_dist keeps Lightning's epoch-level check quiet.
        self.log("val_ppl", val_ppl, prog_bar=True, logger=False, sync_dist=True)
        if not self._fitting():
            return
        train_nll, train_tokens = self._summed_over_ranks(self._train_nll, self._train_tokens)
        row = {
            "epoch": self.current_epoch + 1,
            "train_ppl": from_nll(train_nll, int(train_tokens)),
            "val_ppl": val_ppl,
            "train_tokens": int(train_tokens),
            "lr": self._epoch_lr,
        }
        self.history.append(row)
        if self.logger is not None:
            metrics = {k: v for k, v in row.items() if k != "epoch"}
            metrics["tokens_per_s"] = train_tokens / max(self._train_seconds, 1e-9)
            self.logger.log_metrics(metrics, step=int(row["epoch"]))
        # Raised before the checkpoint callbacks (on_validation_end) run: this epoch's weights
        # are never saved, and the epoch's figures above are still in the run for the user.
        self._raise_if_diverged(nll, val_ppl, int(row["epoch"]))

    def _raise_if_diverged(self, nll: float, val_ppl: float, epoch: int) -> None:
        if math.isfinite(nll) and val_ppl < self.vocab_size:
            return
        seen = "nan" if math.isnan(nll) else f"{val_ppl:.6g}"
        raise TrainingDiverged(
            f"training diverged: val perplexity {seen} after epoch {epoch} (the uniform "
            f"model's is {self.vocab_size}): lower train.lr (now {self.hparams['lr']:g}) or "
            "keep gradient clipping on (train.clip > 0)")

    # --- optimisation ----------------------------------------------------------------------

    def configure_optimizers(self) -> Any:
        h = self.hparams
        params = self.model.parameters()
        optimizer: torch.optim.Optimizer
        if h["optimizer"] == "sgd":
            optimizer = torch.optim.SGD(params, lr=h["lr"], momentum=h["momentum"],
                                        weight_decay=h["weight_decay"])
        elif h["optimizer"] == "adam":
            optimizer = torch.optim.Adam(params, lr=h["lr"], weight_decay=h["weight_decay"])
        else:
            optimizer = torch.optim.AdamW(params, lr=h["lr"], weight_decay=h["weight_decay"])
        if h["schedule"] == "cosine":
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=self.trainer.max_epochs or 1)
            return {"optimizer": optimizer, "lr_scheduler": cosine}
        if h["schedule"] == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": plateau, "monitor": "val_ppl"}}
        return optimizer

    # --- checkpoints carry what a resumed run needs ---------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rnnlm"] = {
            "history": self.history,
            "torch_rng_state": torch.get_rng_state(),  # dropout draws from it
            "cuda_rng_states": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("rnnlm", {})
        self.history = list(saved.get("history", []))
        if "torch_rng_state" in saved:
            torch.set_rng_state(saved["torch_rng_state"])
        if saved.get("cuda_rng_states") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng_states"])
