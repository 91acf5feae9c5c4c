"""A trained network outside the Trainer: loaded safely, scored by the protocol, asked for the next
token's distribution."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rnnlm.errors import RnnlmError
from rnnlm.neural.checkpoints import read_checkpoint
from rnnlm.neural.data import SplitChunks
from rnnlm.neural.models import State
from rnnlm.neural.task import LanguageModelTask
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
def token_log_probs(task: LanguageModelTask, ids: np.ndarray, chunk: int = 1024,
                    interrupt: Callable[[], None] | None = None) -> np.ndarray:
    """log P(ids[i] | ids[:i]) for i = 1..N-1, as `split_perplexity` scores them (float64),
    a chunk at a time with the state carried: memory is bounded by the chunk, not the text.
    `interrupt` is called before each chunk: it raises to stop (a request's deadline)."""
    was_training = task.training
    task.eval()
    state = None
    out = np.empty(max(len(ids) - 1, 0))
    done = 0
    try:
        for inputs, labels in SplitChunks(ids, chunk):
            if interrupt is not None:
                interrupt()
            logits, state = task(inputs.to(task.device), state)
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            picked = log_probs.gather(-1, labels.to(task.device)[..., None]).reshape(-1)
            out[done : done + picked.numel()] = picked.double().cpu().numpy()
            done += picked.numel()
    finally:
        task.train(was_training)
    return out


class TrainedNetwork:
    """A trained network as the evaluate stage and the samplers see every model: `perplexity` of
    a split, and the next token's distribution as the book's `predict_ch8` computes it (the
    state warmed up on the prefix, then each new token fed once, the state carried). It holds no
    state of any text: one object serves concurrent requests."""

    def __init__(self, task: LanguageModelTask) -> None:
        self.task = task

    def perplexity(self, ids: np.ndarray, what: str = "the network") -> float:
        return split_perplexity(self.task, ids)

    def token_log_probs(self, ids: np.ndarray,
                        interrupt: Callable[[], None] | None = None) -> np.ndarray:
        return token_log_probs(self.task, ids, interrupt=interrupt)

    def continuation(self, prefix: Sequence[int],
                     interrupt: Callable[[], None] | None = None) -> NetworkContinuation:
        return NetworkContinuation(self.task, prefix, interrupt)

    def next_token_probs(self, context: Sequence[int] | np.ndarray) -> np.ndarray:
        return self.continuation([int(t) for t in context]).probs()


class NetworkContinuation:
    """One draw's hidden state and last logits, read from its prefix (a chunk at a time, the
    state carried, so a long prefix costs the memory of one chunk) then token by token."""

    @torch.no_grad()
    def __init__(self, task: LanguageModelTask, prefix: Sequence[int],
                 interrupt: Callable[[], None] | None = None, chunk: int = 1024) -> None:
        if not len(prefix):
            raise RnnlmError("a recurrent model needs a non-empty prefix to start from")
        self.task = task
        self._state: State | None = None
        tokens = [int(t) for t in prefix]
        for start in range(0, len(tokens), chunk):
            if interrupt is not None:
                interrupt()
            self._last = self._read(tokens[start : start + chunk])

    @torch.no_grad()
    def _read(self, tokens: list[int]) -> torch.Tensor:
        inputs = torch.tensor([tokens], dtype=torch.long, device=self.task.device)
        logits, self._state = self.task(inputs, self._state)
        return logits[0, -1].double()

    def probs(self) -> np.ndarray:
        return torch.softmax(self._last, dim=-1).cpu().numpy()

    def append(self, token: int) -> None:
        self._last = self._read([token])
