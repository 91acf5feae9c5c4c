"""Counting n-grams of token ids without a Python dict per n-gram.

Each n-gram is packed into one int64 key, one position at a time: the (j)-gram prefix is replaced
by its dense rank among distinct prefixes before the next id is appended, so keys stay below
(number of tokens) x (vocabulary size) whatever n is, and never overflow.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def count_ngrams(ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct n-grams as rows of an (k, n) int32 array, in lexicographic order, and counts."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    ids = np.asarray(ids, dtype=np.int64)
    m = len(ids) - n + 1
    if m <= 0:
        return np.empty((0, n), dtype=np.int32), np.empty(0, dtype=np.int64)
    radix = int(ids.max()) + 1
    keys = ids[:m]
    for j in range(1, n):
        # Dense ranks preserve lexicographic order, so the final sort is lexicographic too.
        _, ranks = np.unique(keys, return_inverse=True)
        keys = ranks.astype(np.int64) * radix + ids[j : j + m]
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    grams = sliding_window_view(ids, n)[first]
    return grams.astype(np.int32), counts
