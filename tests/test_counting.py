from collections import Counter

import numpy as np
import pytest

from rnnlm.ngram.counts import count_ngrams


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_counts_match_a_dict_count_in_lexicographic_order(n: int) -> None:
    ids = np.random.default_rng(n).integers(0, 7, size=500)
    grams, counts = count_ngrams(ids, n)
    expected = Counter(tuple(int(t) for t in ids[i : i + n]) for i in range(len(ids) - n + 1))
    rows = [tuple(r) for r in grams.tolist()]
    assert rows == sorted(expected)
    assert dict(zip(rows, counts.tolist(), strict=True)) == expected


def test_large_vocabularies_and_orders_do_not_overflow() -> None:
    ids = np.array([2**30, 5, 2**30, 5, 2**30, 5, 7], dtype=np.int64)
    grams, counts = count_ngrams(ids, 5)
    big = 2**30  # (2**30)**5 would overflow int64 if n-grams were packed naively
    assert grams.tolist() == [[5, big, 5, big, 5], [big, 5, big, 5, 7], [big, 5, big, 5, big]]
    assert counts.tolist() == [1, 1, 1]


def test_too_short_gives_no_ngrams() -> None:
    grams, counts = count_ngrams(np.array([1, 2]), 3)
    assert grams.shape == (0, 3) and counts.shape == (0,)
