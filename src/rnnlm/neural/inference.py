"""A trained network outside the Trainer: loaded safely, scored by the protocol, asked for the next
token's distribution."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnlm.errors import RnnlmError
from rnnlm.neural.data import SplitChunks
from rnnlm.neural.models import State
from rnnlm.neural.task import LanguageModelTask
from rnnlm.neural.trainer import read_checkpoint
from rnnlm.scoring import from_nll
from rnnlm.text.vocab import Vocab


def load_task(checkpoint: str | Path) -> LanguageModelTask:
    """The model of a Lightning checkpoint, read with `weights_only=True` (no arbitrary pickles)."""
    saved = read_checkpoint(Path(checkpoint))
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


@torch.no_grad()
def split_perplexity(task: LanguageModelTask, ids: np.ndarray, chunk: int = 1024) -> float:
    """Every token after the first predicted once, the state carried from the split's start."""
    was_training = task.training
    task.eval()
    state = None
    nll, tokens = 0.0, 0
    for inputs, labels in SplitChunks(ids, chunk):
        logits, state = task(inputs.to(task.device), state)
        nll += F.cross_entropy(logits.reshape(-1, task.vocab_size).float(),
                               labels.reshape(-1).to(task.device), reduction="sum").item()
        tokens += labels.numel()
    task.train(was_training)
    return from_nll(nll, tokens)


@torch.no_grad()
def token_log_probs(task: LanguageModelTask, ids: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """log P(ids[i] | ids[:i]) for i = 1..N-1, as `split_perplexity` scores them (float64)."""
    was_training = task.training
    task.eval()
    state = None
    out = []
    for inputs, labels in SplitChunks(ids, chunk):
        logits, state = task(inputs.to(task.device), state)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        out.append(log_probs.gather(-1, labels.to(task.device)[..., None]).reshape(-1))
    task.train(was_training)
    return torch.cat(out).double().cpu().numpy() if out else np.empty(0)


class TrainedNetwork:
    """A trained network as the evaluate stage and the samplers see every model: `perplexity` of
    a split, and `next_token_probs` as the book's `predict_ch8` does it (the state is warmed up on
    the prefix, then each new token is fed once, the state carried)."""

    def __init__(self, task: LanguageModelTask) -> None:
        self.task = task
        self._seen: list[int] = []
        self._state: State | None = None
        self._last: torch.Tensor | None = None

    def perplexity(self, ids: np.ndarray, what: str = "the network") -> float:
        return split_perplexity(self.task, ids)

    def token_log_probs(self, ids: np.ndarray) -> np.ndarray:
        return token_log_probs(self.task, ids)

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
