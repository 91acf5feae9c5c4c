"""Scoring a split with a trained model, outside any Trainer: the project's scoring protocol."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .datamodule import SplitChunks
from .lm_module import LanguageModelTask
from .perplexity import from_nll


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
