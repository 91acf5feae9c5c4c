"""Counting the n-grams of one order, as rows of token ids (the n-gram models' trie, flattened)."""

from __future__ import annotations

import numpy as np

from .ngram_counts import NgramCounts


def count_ngrams(ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct n-grams as rows of an (k, n) int32 array, in lexicographic order, and counts."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    ids = np.asarray(ids)
    if len(ids) < n:
        return np.empty((0, n), dtype=np.int32), np.empty(0, dtype=np.int64)
    counts = NgramCounts.fit(ids, n, int(ids.max()) + 1)
    return counts.token_matrix(n).astype(np.int32), counts.counts[n - 1]
