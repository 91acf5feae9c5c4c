"""Cutting a token stream into the contiguous train/val/test splits (and reversing it first)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rnnlm.errors import RnnlmError

SPLITS = ("train", "val", "test")


def reverse_stream(stream: pa.DictionaryArray) -> pa.DictionaryArray:
    """The same tokens right to left, for scoring models on the reversed language."""
    indices = stream.indices.to_numpy(zero_copy_only=False)[::-1]
    return pa.DictionaryArray.from_arrays(pa.array(np.ascontiguousarray(indices)),
                                          stream.dictionary)


def split_bounds(n_tokens: int, train: float, val: float) -> tuple[int, int]:
    """Contiguous split boundaries: train = [0, b1), val = [b1, b2), test = [b2, n)."""
    # Rounding the sum drops float noise: 0.7 + 0.2 is 0.8999999999999999, not 0.9.
    return int(train * n_tokens), int(round(train + val, 12) * n_tokens)


def check_split_sizes(sizes: dict[str, int]) -> None:
    """Every split needs at least 2 tokens: one to condition on, one to predict."""
    total = sum(sizes.values())
    for name, size in sizes.items():
        if size < 2:
            raise RnnlmError(
                f"the {name} split has {size} tokens of {total} in all; a split needs"
                " at least 2 (one to condition on, one to predict): use a longer corpus or"
                " larger split fractions"
            )


def split_stream(
    stream: pa.DictionaryArray, train: float, val: float
) -> dict[str, pa.DictionaryArray]:
    """Cut the stream into contiguous train/val/test slices (zero-copy views)."""
    b1, b2 = split_bounds(len(stream), train, val)
    parts = {"train": stream[:b1], "val": stream[b1:b2], "test": stream[b2:]}
    check_split_sizes({name: len(part) for name, part in parts.items()})
    return parts
