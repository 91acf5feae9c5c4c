"""Perplexity, the one figure every model in the project is compared by, and the protocol that
scores a split with any model.

The protocol: every token of a split after the first is predicted once, from the tokens before
it inside the split (as many as the model can use); perplexity is exp of the mean negative
log-likelihood over all of them, tokens weighted equally (never a mean of per-batch values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from rnnlm.errors import RnnlmError


def from_nll(nll_sum: float, tokens: int) -> float:
    """exp(mean negative log-likelihood per predicted token); inf, not an OverflowError, for a
    diverged model."""
    if tokens == 0:
        raise RnnlmError("perplexity of no predicted tokens: the split has fewer than 2 tokens")
    mean = nll_sum / tokens
    return math.exp(mean) if mean < 700 else math.inf


def from_probs(probs: np.ndarray, what: str = "the model") -> float:
    """The same from the probability of each predicted token; a probability of 0 (an infinite
    perplexity, which no comparison can use) is refused here, for every model."""
    with np.errstate(divide="ignore"):
        return from_log_probs(np.log(probs), what)


def from_log_probs(log_probs: np.ndarray, what: str = "the model") -> float:
    """The same from the natural log of each predicted token's probability (-inf for 0)."""
    zeros = int(np.count_nonzero(log_probs == -np.inf))
    if zeros:
        raise RnnlmError(f"{what} gives probability 0 to {zeros} of its {len(log_probs)} "
                         "predicted tokens, so its perplexity is infinite: smooth every order "
                         "(ngram.eps > 0)")
    return from_nll(float(np.sum(-log_probs)), len(log_probs))


class Scorable(Protocol):
    def perplexity(self, ids: np.ndarray, what: str) -> float:
        """Perplexity of the split `ids` under the protocol; `what` names it in errors."""
        ...


def perplexities(model: Scorable, splits: Mapping[str, np.ndarray], name: str
                 ) -> dict[str, float]:
    """{"<split>_ppl": perplexity} for each split, by the protocol."""
    return {f"{split}_ppl": model.perplexity(ids, f"the {name} model on the {split} split")
            for split, ids in splits.items()}


def bits_per_character(perplexity: float, scored_tokens: int, characters: int) -> float:
    """The split's total negative log2-likelihood over the characters its scored tokens cover:
    scored_tokens * log2(perplexity) / characters."""
    if characters <= 0:
        raise RnnlmError(f"bits per character of a split whose scored tokens cover "
                         f"{characters} characters")
    return scored_tokens * math.log2(perplexity) / characters if perplexity < math.inf \
        else math.inf
