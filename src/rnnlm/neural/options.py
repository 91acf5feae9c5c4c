"""The choices a training is configured by, importable without torch: the settings layer
validates params.yaml against these types, and the training code takes them as they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["scratch", "rnn", "gru", "lstm", "mlp"]
Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["none", "cosine", "plateau"]
Precision = Literal["32", "bf16-mixed", "16-mixed"]


@dataclass(frozen=True)
class TrainerOptions:
    """What the Lightning Trainer is built from (see `trainer.build_trainer`)."""

    epochs: int
    clip: float  # gradient clipping by global norm; 0 turns it off
    patience: int = 0  # epochs without a better val_ppl before stopping early; 0 never stops
    accelerator: str = "auto"
    devices: int | str = "auto"
    precision: Precision = "32"
    strategy: str = "auto"
    num_nodes: int = 1
    threads: int | Literal["auto"] = "auto"  # CPU threads; auto: the cores other processes leave

    def resumed_must_match(self) -> dict[str, object]:
        """The options a resumed training must share with the one it continues (where it runs,
        on what hardware, may change)."""
        return {"epochs": self.epochs, "clip": self.clip, "patience": self.patience,
                "precision": self.precision, "strategy": self.strategy,
                "num_nodes": self.num_nodes}
