"""Perplexity, the one figure every model in the project is compared by."""

from __future__ import annotations

import math

import numpy as np

from .errors import RnnlmError


def from_nll(nll_sum: float, tokens: int) -> float:
    """exp(mean negative log-likelihood per predicted token), never a mean of per-batch
    perplexities; inf, not an OverflowError, for a diverged model."""
    if tokens == 0:
        raise RnnlmError("perplexity of no predicted tokens: the split has fewer than 2 tokens")
    mean = nll_sum / tokens
    return math.exp(mean) if mean < 700 else math.inf


def from_probs(probs: np.ndarray) -> float:
    """The same from the probability of each predicted token."""
    with np.errstate(divide="ignore"):
        return from_nll(float(np.sum(-np.log(probs))), len(probs))
