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

FLOAT32 = 4  # bytes; train.precision's choices (32, bf16-mixed, 16-mixed) all keep float32 weights
MEMINFO = Path("/proc/meminfo")
CGROUP = Path("/sys/fs/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned 64-bit number; v2 writes "max".
_NO_LIMIT = 1 << 62


def parameter_count(vocab_size: int, model: Mapping[str, Any]) -> int:
    """The network's parameters, counted on PyTorch's meta device (no memory is touched)."""
    with torch.device("meta"):
        network = build_model(vocab_size=vocab_size, **model)
    return sum(p.numel() for p in network.parameters())


def optimizer_states(optimizer: str, momentum: float = 0.0) -> int:
    """Tensors of the parameters' size the optimizer keeps: Adam's and AdamW's two moments,
    SGD's momentum buffer (none without momentum)."""
    if optimizer in ("adam", "adamw"):
        return 2
    return 1 if momentum else 0


def bytes_per_parameter(optimizer: str, momentum: float = 0.0) -> int:
    """The weight, its gradient and the optimizer's state, float32 each."""
    return FLOAT32 * (2 + optimizer_states(optimizer, momentum))


def _cgroup_limit(root: Path) -> int | None:
    """This container's memory limit (cgroup v2 memory.max, else v1 memory.limit_in_bytes), which
    /proc/meminfo does not show; None when there is none."""
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            value = (root / name).read_text().strip()
        except OSError:
            continue
        return int(value) if value.isdigit() and int(value) < _NO_LIMIT else None
    return None


def available_bytes(meminfo: Path = MEMINFO, cgroup: Path = CGROUP) -> int:
    """Memory a new allocation can get now: the kernel's MemAvailable (free memory plus the
    caches it can drop; the machine's total would count what other programs hold), at most the
    container's cgroup limit. The machine's total where /proc/meminfo cannot be read."""
    have = None
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                have = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if have is None:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    limit = _cgroup_limit(cgroup)
    return have if limit is None else min(have, limit)


def check_fits(vocab_size: int, model: Mapping[str, Any], optimizer: str = "adam",
               momentum: float = 0.0, available: int | None = None) -> None:
    """Refuse a network whose weights, gradients and optimizer state alone exceed the available
    memory (`available_bytes()` unless given). Activations come on top, so passing is no promise;
    failing is certain."""
    count = parameter_count(vocab_size, model)
    each = bytes_per_parameter(optimizer, momentum)
    need = count * each
    have = available_bytes() if available is None else available
    if need > have:
        state = {0: "no optimizer state", 1: "the momentum buffer",
                 2: f"{optimizer}'s two moments"}[optimizer_states(optimizer, momentum)]
        raise RnnlmError(
            f"model.hidden = {model['hidden']:,} (model.kind = {model['kind']}, model.num_layers "
            f"= {model.get('num_layers', 1)}, {vocab_size:,} tokens) makes a network of "
            f"{count:,} parameters: training it needs at least {need / 2**30:,.1f} GiB (float32 "
            f"weights, their gradients and {state}: {each} bytes a parameter; activations come "
            f"on top), more than the {have / 2**30:,.1f} GiB of memory available; lower "
            "model.hidden in params.yaml")
