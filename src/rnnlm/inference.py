"""A trained network outside the Trainer: loaded safely, asked for the next token's distribution."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import RnnlmError
from .lm_module import LanguageModelTask
from .models import State
from .vocab import Vocab


def load_task(checkpoint: str | Path, map_location: str = "cpu") -> LanguageModelTask:
    """The model of a Lightning checkpoint, read with `weights_only=True` (no arbitrary pickles)."""
    try:
        saved = torch.load(checkpoint, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise RnnlmError(f"no checkpoint at {checkpoint}: run `dvc repro train` first") from None
    task = LanguageModelTask(**saved["hyper_parameters"])
    task.load_state_dict(saved["state_dict"])
    return task.eval()


def load_trained(directory: str | Path) -> tuple[LanguageModelTask, Vocab, dict[str, Any]]:
    """What the train stage leaves in `directory`: the best model, its vocabulary, and
    `model.json` (the model's settings and how its text was cleaned and tokenized)."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / "model.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RnnlmError(f"no trained model in {directory}: run `dvc repro train` first") from None
    return (load_task(directory / meta["checkpoint"]), Vocab.load(directory / "vocab.parquet"),
            meta)


class NextTokenRNN:
    """`next_token_probs` for a trained network, as the book's `predict_ch8` does it: the state is
    warmed up on the prefix, then each new token is fed once, the state carried."""

    def __init__(self, task: LanguageModelTask) -> None:
        self.task = task
        self._seen: list[int] = []
        self._state: State | None = None
        self._last: torch.Tensor | None = None

    @torch.no_grad()
    def next_token_probs(self, context: Sequence[int] | np.ndarray) -> np.ndarray:
        context = [int(t) for t in context]
        if not context:
            raise RnnlmError("a recurrent model needs a non-empty prefix to start from")
        if context[: len(self._seen)] != self._seen:  # not a continuation: start over
            self._seen, self._state = [], None
        new = context[len(self._seen) :]
        if new:
            inputs = torch.tensor([new], dtype=torch.long, device=self.task.device)
            logits, self._state = self.task(inputs, self._state)
            self._last = logits[0, -1].double()
            self._seen = context
        assert self._last is not None
        return torch.softmax(self._last, dim=-1).cpu().numpy()
