"""What a network's training needs in memory, known before anything is allocated: a size the
machine cannot hold is one line naming `model.hidden`, not a failed 120 GB allocation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rnnlm.errors import RnnlmError
from rnnlm.neural.models import build_model

# float32 weights, their gradients and Adam's two moments: 4 x 4 bytes per parameter. Activations
# come on top (they grow with batch_size x num_steps x hidden), so this is a lower bound.
BYTES_PER_PARAMETER = 16


def parameter_count(vocab_size: int, model: Mapping[str, Any]) -> int:
    """The network's parameters, counted on PyTorch's meta device (no memory is touched)."""
    with torch.device("meta"):
        network = build_model(vocab_size=vocab_size, **model)
    return sum(p.numel() for p in network.parameters())


def available_bytes() -> int:
    """Memory the kernel says is available now (MemAvailable), else the machine's total."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits(vocab_size: int, model: Mapping[str, Any], available: int | None = None) -> None:
    """Refuse a network whose training cannot fit in the available memory."""
    count = parameter_count(vocab_size, model)
    need = count * BYTES_PER_PARAMETER
    have = available_bytes() if available is None else available
    if need > have:
        raise RnnlmError(
            f"model.hidden = {model['hidden']:,} (model.num_layers = {model.get('num_layers', 1)}"
            f", {vocab_size:,} tokens) makes a network of {count:,} parameters: training it "
            f"needs at least {need / 2**30:,.1f} GiB (weights, gradients and Adam's state, 4 "
            f"bytes each; activations come on top), more than the {have / 2**30:,.1f} GiB this "
            "machine has available; lower model.hidden in params.yaml")
