"""The n-gram trie: counts, lookups of a new stream, suffixes, and its Parquet round trip."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from rnnlm.errors import RnnlmError
from rnnlm.ngram import counts as counts_module
from rnnlm.ngram.counts import MISSING, NgramCounts, count_ngrams


def grams_of(ids: list[int], k: int) -> Counter:
    return Counter(tuple(ids[i : i + k]) for i in range(len(ids) - k + 1))


@pytest.fixture
def stream() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 6, size=700).astype(np.int32)


def test_every_order_counts_like_a_dict_in_lexicographic_order(stream) -> None:
    counts = NgramCounts.fit(stream, 4, 7)
    for k in range(1, 5):
        rows = [tuple(r) for r in counts.token_matrix(k).tolist()]
        expected = grams_of(stream.tolist(), k)
        assert rows == sorted(expected)
        assert dict(zip(rows, counts.counts[k - 1].tolist(), strict=True)) == expected
    assert counts.tokens_seen == len(stream)


# By packed tokens in uint32 keys, in int64 keys (ids spread over a million), by parents' rows.
@pytest.mark.parametrize(("spread", "packed_bits"), [(1, 63), (20_000, 63), (1, 0)])
def test_counting_in_many_buckets_and_chunks_gives_the_same_tables(monkeypatch, spread,
                                                                    packed_bits) -> None:
    # Zipf-like ids, so that the buckets' sizes differ and a key repeats across chunks.
    stream = (np.random.default_rng(3).zipf(1.3, size=5000) % 50).astype(np.int32) * spread
    whole = NgramCounts.fit(stream, 3, 50 * spread)
    for name, value in (("BUCKET", 300), ("CHUNK", 64), ("SAMPLES", 40),
                        ("PACKED_BITS", packed_bits)):
        monkeypatch.setattr(counts_module, name, value)
    pieces = NgramCounts.fit(stream, 3, 50 * spread)
    for a, b in zip(whole.keys + whole.counts, pieces.keys + pieces.counts, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


def test_counts_are_held_and_stored_in_the_narrowest_unsigned_type(tmp_path, stream) -> None:
    counts = NgramCounts.fit(np.tile(stream, 100), 2, 7)  # unigram counts over 255
    assert [c.dtype for c in counts.counts] == [np.uint16, np.uint16]
    assert NgramCounts.fit(stream, 2, 7).counts[1].dtype == np.uint8
    counts.save(tmp_path)
    frame = pd.read_parquet(tmp_path / "order2.parquet")
    assert [str(t) for t in frame.dtypes] == ["int8", "int8", "uint16"]


def test_gram_ids_find_each_ngram_ending_at_each_position(stream) -> None:
    counts = NgramCounts.fit(stream, 3, 7)
    other = np.random.default_rng(1).integers(0, 7, size=200)  # token 6 was never seen
    rows = {k: {tuple(r): i for i, r in enumerate(counts.token_matrix(k).tolist())}
            for k in (1, 2, 3)}
    for k, ids in enumerate(counts.gram_ids(other), start=1):
        for i, found in enumerate(ids.tolist()):
            gram = tuple(other[i - k + 1 : i + 1].tolist()) if i >= k - 1 else None
            assert found == rows[k].get(gram, MISSING)


def test_suffixes_point_at_the_last_tokens(stream) -> None:
    counts = NgramCounts.fit(stream, 3, 7)
    suffix_rows = counts.token_matrix(2)[counts.suffixes(3)]
    np.testing.assert_array_equal(suffix_rows, counts.token_matrix(3)[:, 1:])


def test_parquet_round_trip_is_readable_with_pandas(tmp_path, stream) -> None:
    counts = NgramCounts.fit(stream, 3, 7)
    counts.save(tmp_path)
    frame = pd.read_parquet(tmp_path / "order3.parquet")
    assert list(frame.columns) == ["w1", "w2", "w3", "count"]
    assert frame["count"].sum() == len(stream) - 2
    loaded = NgramCounts.load(tmp_path, 3, 7)
    for a, b in zip(counts.keys + counts.counts, loaded.keys + loaded.counts, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RnnlmError, match=r"order4\.parquet is missing"):
        NgramCounts.load(tmp_path, 4, 7)


def test_short_streams_and_ids_outside_the_vocabulary() -> None:
    counts = NgramCounts.fit(np.array([2, 3]), 3, 4)
    assert [len(k) for k in counts.keys] == [2, 1, 0]
    assert counts.gram_ids(np.array([2]))[2].tolist() == [MISSING]
    with pytest.raises(RnnlmError, match=r"token ids must lie in \[0, 4\)"):
        NgramCounts.fit(np.array([1, 4]), 2, 4)


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



def test_keys_past_two_to_the_31_do_not_wrap() -> None:
    # 20,000 distinct words of a million: a bigram's key, row * V + token, passes 2**31.
    vocab_size = 1_000_000
    stream = np.random.default_rng(4).permutation(vocab_size)[:20_000].astype(np.int32)
    counts = NgramCounts.fit(stream, 2, vocab_size)
    assert counts.keys[1].max() > 2**31
    found = counts.gram_ids(stream)
    assert all(ids.dtype == np.int64 for ids in found)
    assert (found[1][1:] >= 0).all()  # every bigram of the stream is found again
