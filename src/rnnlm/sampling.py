"""Drawing text from any model that gives the next token's distribution after a context."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rnnlm.errors import RnnlmError


class NextTokenModel(Protocol):
    def next_token_probs(self, context: Sequence[int] | np.ndarray) -> np.ndarray: ...


def draw(probs: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
         top_k: int | None = None) -> int:
    """One token id: the most likely at temperature 0, else sampled from probs^(1/T), optionally
    restricted to the `top_k` most likely tokens."""
    if temperature < 0:
        raise RnnlmError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise RnnlmError(f"top_k must be at least 1, got {top_k}")
    if temperature == 0:
        return int(np.argmax(probs))
    with np.errstate(divide="ignore"):
        logits = np.log(probs) / temperature
    if top_k is not None and top_k < len(logits):
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= cutoff, logits, -np.inf)
    weights = np.exp(logits - logits.max())
    return int(rng.choice(len(weights), p=weights / weights.sum()))


def derived_seed(seed: int, *keys: str) -> int:
    """A seed of its own for each combination of keys (a model, a prefix), drawn from `seed`:
    different prefixes get different draws, and the same keys the same draw in every process
    (crc32, unlike `hash`, is not salted per process)."""
    entropy = [seed, *(zlib.crc32(key.encode("utf-8")) for key in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def generate(model: NextTokenModel, prefix: Sequence[int], num_tokens: int, seed: int,
             temperature: float = 1.0, top_k: int | None = None) -> list[int]:
    """`num_tokens` ids continuing `prefix` (the prefix itself not included); seeded."""
    rng = np.random.default_rng(seed)
    history = list(prefix)
    for _ in range(num_tokens):
        history.append(draw(model.next_token_probs(history), rng, temperature, top_k))
    return history[len(prefix) :]
