"""N-gram counts of every order 1..n, held as a trie in sorted numpy arrays.

Order k is one sorted int64 array of keys `context * V + token`, where `context` is the row of the
(k-1)-gram prefix in order k-1's table (0, the empty context, for unigrams), and a parallel array of
counts. A row number is the n-gram's id. Sorting by these keys sorts each order lexicographically
by token ids, keys stay below (number of n-grams) x V whatever n is, and finding an n-gram is one
`searchsorted` per order.

Counts are held in the narrowest unsigned type that holds the largest (uint8 .. uint32), and
counting a long stream sorts it a bucket of keys at a time: memory stays near the tables' own
size rather than several int64 copies of the stream.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlm.errors import RnnlmError
from rnnlm.io import atomic_path
from rnnlm.kernels import count_values, index_dtype

MISSING = -1  # id of an n-gram that is not in the table (or runs off the start of the stream)
CHUNK = 1 << 20  # positions or rows handled at once by the chunked passes
BUCKET = 1 << 23  # keys sorted at once when counting: 64 MiB of int64
SAMPLES = 1 << 16  # positions whose keys place the buckets' boundaries
PACKED_BITS = 63  # k-grams whose k token ids fit in this many bits are counted by their tokens


def narrow_counts(counts: np.ndarray) -> np.ndarray:
    """Non-negative counts in the narrowest of uint8, uint16, uint32 that holds them (int64
    beyond: numpy's bincount refuses uint64)."""
    top = int(counts.max()) if len(counts) else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return counts.astype(dtype, copy=False)
    return counts.astype(np.int64, copy=False)


def chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _row_dtype(n_rows: int) -> type[np.signedinteger]:
    return np.int32 if n_rows <= np.iinfo(np.int32).max else np.int64


def _count_keys(n: int, keys_of: Callable[[slice], np.ndarray], rows: np.ndarray | None = None,
                key_type: type[np.integer] = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and counts of the n keys `keys_of(positions)` gives, a chunk at a time;
    with `rows` (n slots), each position's row among the distinct values is written there too.
    `key_type` is what keys_of returns: uint32 keys sort in about half the time of int64.

    The key range is cut into buckets of about BUCKET keys at quantiles of a sample of the keys;
    each bucket gathers its keys in one pass over the positions, is sorted and run-length
    counted. Without `rows`, buckets are counted on every core the process may use (numpy's
    sort lets go of the GIL), and put together in key order: the same tables whatever the
    cores. The outputs are written into arrays of n slots whose untouched tail never takes
    memory.
    """
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint8)
    workers = 1 if rows is not None else len(os.sched_getaffinity(0))
    step = max(n // SAMPLES, 1)
    sample = np.sort(np.concatenate([keys_of(part)[::step] for part in chunks(n, step * 64)]))
    n_buckets = max(-(-n // BUCKET), min(workers, n // CHUNK), 1)
    edges = np.unique(sample[(np.arange(1, n_buckets) * len(sample)) // n_buckets])
    bounds = list(itertools.pairwise([None, *edges.tolist(), None]))
    keys = np.empty(n, dtype=np.int64)
    counts = np.empty(n, dtype=np.int64 if n > np.iinfo(np.uint32).max else np.uint32)
    filled = 0
    if rows is None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for distinct, count in pool.map(lambda b: _count_bucket(n, keys_of, key_type, *b),
                                            bounds):
                stop = filled + len(distinct)
                keys[filled:stop] = distinct
                counts[filled:stop] = count
                filled = stop
        return keys[:filled], narrow_counts(counts[:filled])
    bucket = _Bucket(min(n, 2 * BUCKET), key_type, with_positions=True)  # one for every bucket
    for low, high in bounds:
        bucket.gather(n, keys_of, low, high)
        if not bucket.size:
            continue
        sorted_keys, order = bucket.sorted()
        first = _firsts(sorted_keys)
        rank = np.cumsum(first, dtype=rows.dtype)
        rank += filled - 1
        rows[bucket.positions[: bucket.size][order]] = rank
        del rank
        starts = np.flatnonzero(first)
        del first
        stop = filled + len(starts)
        np.take(sorted_keys, starts, out=keys[filled:stop])
        counts[filled:stop] = np.diff(starts, append=bucket.size)
        filled = stop
    return keys[:filled], narrow_counts(counts[:filled])


def _firsts(sorted_keys: np.ndarray) -> np.ndarray:
    """True where a run of equal keys starts."""
    first = np.empty(len(sorted_keys), dtype=bool)
    first[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    return first


def _count_bucket(n: int, keys_of: Callable[[slice], np.ndarray], key_type: type[np.integer],
                  low: int | None, high: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys in [low, high) and their counts, sorted."""
    bucket = _Bucket(min(n, 2 * BUCKET), key_type, with_positions=False)
    bucket.gather(n, keys_of, low, high)
    sorted_keys, _ = bucket.sorted()
    starts = np.flatnonzero(_firsts(sorted_keys))
    return sorted_keys[starts], np.diff(starts, append=bucket.size)


class _Bucket:
    """The keys of one bucket (and, when asked, their positions), gathered chunk by chunk."""

    def __init__(self, capacity: int, key_type: type[np.integer], with_positions: bool) -> None:
        self.keys = np.empty(capacity, dtype=key_type)
        self.positions = np.empty(capacity if with_positions else 0, dtype=np.int64)
        self.size = 0

    def gather(self, n: int, keys_of: Callable[[slice], np.ndarray], low: int | None,
               high: int | None) -> None:
        """Fill the bucket with the keys in [low, high) (None: unbounded) of n positions."""
        self.size = 0
        for part in chunks(n):
            key = keys_of(part)
            inside = np.ones(len(key), dtype=bool)
            if low is not None:
                inside &= key >= low
            if high is not None:
                inside &= key < high
            self.add(key, inside, part.start)

    def add(self, key: np.ndarray, inside: np.ndarray, offset: int) -> None:
        key = key[inside]
        stop = self.size + len(key)
        if stop > len(self.keys):  # one key far more frequent than the rest
            self.keys = np.concatenate([self.keys[: self.size],
                                        np.empty(stop, self.keys.dtype)])
            if len(self.positions):
                self.positions = np.concatenate([self.positions[: self.size],
                                                 np.empty(stop, np.int64)])
        self.keys[self.size : stop] = key
        if len(self.positions):
            self.positions[self.size : stop] = np.flatnonzero(inside) + offset
        self.size = stop

    def sorted(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The keys sorted, and the order that sorts them when positions are kept."""
        part = self.keys[: self.size]
        if not len(self.positions):
            part.sort()
            return part, None
        order = np.argsort(part)
        return part[order], order


def _by_tokens(ids: np.ndarray, order: int, vocab_size: int, present: np.ndarray
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Orders 2..order, where k token ids fit in one int64: each k-gram is counted by its
    tokens packed into one key, then its key becomes (row of its prefix) * V + last token. Its
    prefixes are sorted, so finding their rows is a sorted search."""
    bits = max(int(vocab_size - 1).bit_length(), 1)
    n = len(ids)
    previous = present.astype(np.int64)  # order k-1's packed keys
    for k in range(2, order + 1):
        key_type = np.uint32 if bits * k <= 32 else np.int64

        def keys_of(rows: slice, k: int = k, key_type: type[np.integer] = key_type
                    ) -> np.ndarray:
            key = ids[rows].astype(key_type)
            for j in range(1, k):
                key <<= bits
                key |= ids[rows.start + j : rows.stop + j].astype(key_type)
            return key

        packed, count = _count_keys(max(n - k + 1, 0), keys_of, key_type=key_type)
        # The top order's keys are rewritten in place; a lower one's stay for the next order.
        table = packed if k == order else np.empty(len(packed), dtype=np.int64)
        for part in chunks(len(packed)):
            last = packed[part] & ((1 << bits) - 1)
            table[part] = np.searchsorted(previous, packed[part] >> bits)
            table[part] *= vocab_size
            table[part] += last
        previous = packed
        yield table, count


def _by_parents(ids: np.ndarray, order: int, vocab_size: int, present: np.ndarray
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Orders 2..order for any vocabulary: each k-gram's key is built from the row of the
    (k-1)-gram it starts with, which counting order k-1 wrote for every position."""
    n = len(ids)
    # parents[i]: row in order k-1 of the (k-1)-gram starting at token i, for the k-grams
    # starting there; for k = 2, a token's row among the unigrams.
    rank = np.zeros(vocab_size, dtype=_row_dtype(len(present)))
    rank[present] = np.arange(len(present), dtype=rank.dtype)
    parents = np.empty(n, dtype=rank.dtype)
    for part in chunks(n):  # numpy, not Arrow: Arrow's pool would keep the freed buffers
        parents[part] = rank[ids[part]]
    del rank
    for k in range(2, order + 1):
        stop = max(n - k + 1, 0)

        def keys_of(rows: slice, k: int = k, parents: np.ndarray = parents) -> np.ndarray:
            tokens = ids[rows.start + k - 1 : rows.stop + k - 1]
            return parents[rows].astype(np.int64) * vocab_size + tokens

        parents = np.empty(stop if k < order else 0, dtype=_row_dtype(stop))
        table, count = _count_keys(stop, keys_of, parents if k < order else None)
        yield table, count


def _check_ids(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise RnnlmError(f"token ids must be a 1-d integer array, got {ids.dtype} {ids.shape}")
    if len(ids) and (ids.min() < 0 or ids.max() >= vocab_size):
        raise RnnlmError(
            f"token ids must lie in [0, {vocab_size}) for a vocabulary of {vocab_size}, "
            f"got [{ids.min()}, {ids.max()}]: were the ids and the vocabulary built together?"
        )
    return ids


@dataclass(frozen=True, eq=False)
class NgramCounts:
    vocab_size: int
    keys: tuple[np.ndarray, ...]  # keys[k - 1]: sorted int64 keys of order k
    counts: tuple[np.ndarray, ...]  # counts[k - 1]: int64 count of each key

    @property
    def order(self) -> int:
        return len(self.keys)

    @property
    def tokens_seen(self) -> int:
        return int(self.counts[0].sum()) if self.order else 0

    @classmethod
    def fit(cls, ids: np.ndarray, order: int, vocab_size: int) -> NgramCounts:
        """Count every k-gram of `ids` for k = 1..order."""
        if order < 1:
            raise RnnlmError(f"an n-gram order must be at least 1, got {order}")
        ids = _check_ids(ids, vocab_size)
        totals = count_values(ids, minlength=vocab_size) if len(ids) else \
            np.zeros(0, dtype=np.int64)
        present = np.flatnonzero(totals)
        unigrams = (present.astype(np.int64), narrow_counts(totals[present]))
        del totals
        bits = max(int(vocab_size - 1).bit_length(), 1)
        fit_higher = _by_tokens if bits * order <= PACKED_BITS else _by_parents
        keys, counts = zip(unigrams, *fit_higher(ids, order, vocab_size, present), strict=True)
        return cls(vocab_size, tuple(keys), tuple(counts))

    def truncated(self, order: int) -> NgramCounts:
        """The same counts up to a lower order."""
        return NgramCounts(self.vocab_size, self.keys[:order], self.counts[:order])

    @functools.cached_property
    def unigram_rows(self) -> np.ndarray:
        """Each token's row among the unigrams (MISSING if unseen): order 1 found by indexing."""
        rows = np.full(self.vocab_size, MISSING, dtype=_row_dtype(len(self.keys[0])))
        rows[self.keys[0]] = np.arange(len(self.keys[0]), dtype=rows.dtype)
        return rows

    def lookup(self, k: int, context: np.ndarray, token: np.ndarray) -> np.ndarray:
        """Id in order k of the n-gram (context id, token), or MISSING."""
        if k == 1:  # the context is 0 (or MISSING)
            rows = self.unigram_rows[token].astype(np.int64)  # ids are int64 everywhere
            return np.where(np.asarray(context) >= 0, rows, MISSING)
        table = self.keys[k - 1]
        key = np.where(context >= 0, context * self.vocab_size + token, MISSING)
        row = np.searchsorted(table, key)
        found = row < len(table)
        found[found] = table[row[found]] == key[found]
        return np.where(found, row, MISSING)

    def gram_ids(self, ids: np.ndarray) -> list[np.ndarray]:
        """For each order k, the id of the k-gram ending at every position of `ids`.

        Positions with fewer than k tokens before and including them, and unseen k-grams, get
        MISSING.
        """
        ids = _check_ids(ids, self.vocab_size).astype(np.int64)
        n = len(ids)
        out: list[np.ndarray] = []
        for k in range(1, self.order + 1):
            current = np.full(n, MISSING, dtype=np.int64)
            if k <= n:
                # The context of the k-gram ending at i is the (k-1)-gram ending at i-1.
                context = out[-1][k - 2 : n - 1] if k > 1 else np.zeros(n, dtype=np.int64)
                current[k - 1 :] = self.lookup(k, context, ids[k - 1 :])
            out.append(current)
        return out

    def contexts(self, k: int, rows: slice = slice(None)) -> np.ndarray:
        """For each k-gram (of `rows`), the id of its (k-1)-gram prefix in order k-1 (0 for
        unigrams)."""
        return self.keys[k - 1][rows] // self.vocab_size

    def last_tokens(self, k: int, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
        return self.keys[k - 1][rows] % self.vocab_size

    def token_matrix(self, k: int, rows: slice = slice(None)) -> np.ndarray:
        """The k-grams of order k (of `rows`) as rows of token ids, shape (rows, k)."""
        columns = [self.last_tokens(k, rows)]
        context = self.contexts(k, rows)
        for j in range(k - 1, 0, -1):
            columns.append(self.last_tokens(j, context))
            context = self.keys[j - 1][context] // self.vocab_size
        return np.stack(columns[::-1], axis=1)

    def suffixes(self, k: int, rows: slice = slice(None)) -> np.ndarray:
        """For each k-gram (k >= 2; of `rows`), the id in order k-1 of its last k-1 tokens."""
        matrix = self.token_matrix(k, rows)
        ids = np.zeros(len(matrix), dtype=np.int64)
        for j in range(1, k):
            ids = self.lookup(j, ids, matrix[:, j])
        return ids

    def children(self, k: int, context: int) -> tuple[slice, np.ndarray]:
        """Rows of order k whose prefix is `context`, and the tokens that follow it there."""
        table = self.keys[k - 1]
        start, stop = np.searchsorted(table, [context * self.vocab_size,
                                              (context + 1) * self.vocab_size])
        rows = slice(int(start), int(stop))
        return rows, table[rows] % self.vocab_size

    def save(self, directory: str | Path) -> None:
        """One Parquet file per order: columns w1..wk (token ids, in the narrowest signed type
        for the vocabulary) and count (as held), written a row group at a time."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        directory = Path(directory)
        token_type = pa.from_numpy_dtype(index_dtype(self.vocab_size))
        for k in range(1, self.order + 1):
            schema = pa.schema([*(pa.field(f"w{j + 1}", token_type) for j in range(k)),
                                pa.field("count", pa.from_numpy_dtype(self.counts[k - 1].dtype))])
            with atomic_path(directory / f"order{k}.parquet") as tmp, \
                    pq.ParquetWriter(tmp, schema) as writer:
                for rows in chunks(len(self.keys[k - 1])):
                    matrix = self.token_matrix(k, rows)
                    writer.write_table(pa.table(
                        [*(matrix[:, j] for j in range(k)), self.counts[k - 1][rows]],
                        schema=schema.remove_metadata()).cast(schema))
                if not len(self.keys[k - 1]):
                    writer.write_table(schema.empty_table())

    @classmethod
    def load(cls, directory: str | Path, order: int, vocab_size: int) -> NgramCounts:
        import pyarrow.parquet as pq

        directory = Path(directory)
        counts = cls(vocab_size, (), ())
        for k in range(1, order + 1):
            path = directory / f"order{k}.parquet"
            try:
                file = pq.ParquetFile(path)
            except FileNotFoundError:
                raise RnnlmError(f"{path} is missing: rerun the ngram stage") from None
            n = file.metadata.num_rows
            keys = np.empty(n, dtype=np.int64)
            count = np.empty(n, dtype=file.schema_arrow.field("count").type.to_pandas_dtype())
            filled = 0
            for batch in file.iter_batches(batch_size=CHUNK, use_threads=False):
                context = np.zeros(batch.num_rows, dtype=np.int64)
                for j in range(1, k):
                    context = counts.lookup(j, context, batch[f"w{j}"].to_numpy().astype(np.int64))
                stop = filled + batch.num_rows
                keys[filled:stop] = context * vocab_size + batch[f"w{k}"].to_numpy()
                count[filled:stop] = batch["count"].to_numpy()
                # Sorted and distinct, checked a batch at a time (with the key before it): a
                # diff of the whole table would cost twice its size.
                part = keys[max(filled - 1, 0) : stop]
                if (context < 0).any() or (part[1:] <= part[:-1]).any():
                    raise RnnlmError(f"{path} is not a sorted table of order-{k} counts")
                filled = stop
            counts = cls(vocab_size, (*counts.keys, keys), (*counts.counts, count))
        return counts

def count_ngrams(ids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct n-grams as rows of an (k, n) int32 array, in lexicographic order, and counts."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    ids = np.asarray(ids)
    if len(ids) < n:
        return np.empty((0, n), dtype=np.int32), np.empty(0, dtype=np.int64)
    counts = NgramCounts.fit(ids, n, int(ids.max()) + 1)
    return counts.token_matrix(n).astype(np.int32), counts.counts[n - 1]
