"""N-gram counts of every order 1..n, held as a trie in sorted numpy arrays.

Order k is one sorted int64 array of keys `context * V + token`, where `context` is the row of the
(k-1)-gram prefix in order k-1's table (0, the empty context, for unigrams), and a parallel array of
counts. A row number is the n-gram's id. Sorting by these keys sorts each order lexicographically
by token ids, keys stay below (number of n-grams) x V whatever n is, and finding an n-gram is one
`searchsorted` per order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rnnlm.errors import RnnlmError
from rnnlm.io import atomic_path
from rnnlm.kernels import unique_inverse

MISSING = -1  # id of an n-gram that is not in the table (or runs off the start of the stream)


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
        n = len(ids)
        keys: list[np.ndarray] = []
        counts: list[np.ndarray] = []
        # parents[i]: id of the (k-1)-gram ending at token i-1, for the k-gram ending at token i.
        parents = np.zeros(n, dtype=np.int64)
        for k in range(1, order + 1):
            stop = max(n - k + 1, 0)
            key = parents[:stop] * vocab_size + ids[k - 1 :]
            unique, parents, count = unique_inverse(key)
            keys.append(unique)
            counts.append(count)
        return cls(vocab_size, tuple(keys), tuple(counts))

    def truncated(self, order: int) -> NgramCounts:
        """The same counts up to a lower order."""
        return NgramCounts(self.vocab_size, self.keys[:order], self.counts[:order])

    def lookup(self, k: int, context: np.ndarray, token: np.ndarray) -> np.ndarray:
        """Id in order k of the n-gram (context id, token), or MISSING."""
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

    def contexts(self, k: int) -> np.ndarray:
        """For each k-gram, the id of its (k-1)-gram prefix in order k-1 (0 for unigrams)."""
        return self.keys[k - 1] // self.vocab_size

    def last_tokens(self, k: int) -> np.ndarray:
        return self.keys[k - 1] % self.vocab_size

    def token_matrix(self, k: int) -> np.ndarray:
        """The k-grams of order k as rows of token ids, shape (rows, k)."""
        columns = [self.last_tokens(k)]
        rows = self.contexts(k)
        for j in range(k - 1, 0, -1):
            columns.append(self.last_tokens(j)[rows])
            rows = self.contexts(j)[rows]
        return np.stack(columns[::-1], axis=1)

    def suffixes(self, k: int) -> np.ndarray:
        """For each k-gram (k >= 2), the id in order k-1 of its last k-1 tokens."""
        matrix = self.token_matrix(k)
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
        """One Parquet file per order: columns w1..wk (token ids) and count."""
        directory = Path(directory)
        for k in range(1, self.order + 1):
            matrix = self.token_matrix(k).astype(np.int32)
            columns = {f"w{j + 1}": matrix[:, j] for j in range(k)}
            table = pa.table({**columns, "count": self.counts[k - 1]})
            with atomic_path(directory / f"order{k}.parquet") as tmp:
                pq.write_table(table, tmp)

    @classmethod
    def load(cls, directory: str | Path, order: int, vocab_size: int) -> NgramCounts:
        directory = Path(directory)
        counts = cls(vocab_size, (), ())
        for k in range(1, order + 1):
            path = directory / f"order{k}.parquet"
            try:
                table = pq.read_table(path)
            except FileNotFoundError:
                raise RnnlmError(f"{path} is missing: rerun the ngram stage") from None
            context = np.zeros(table.num_rows, dtype=np.int64)
            for j in range(1, k):
                context = counts.lookup(j, context, table[f"w{j}"].to_numpy().astype(np.int64))
            key = context * vocab_size + table[f"w{k}"].to_numpy().astype(np.int64)
            if (context < 0).any() or (np.diff(key) <= 0).any():
                raise RnnlmError(f"{path} is not a sorted table of order-{k} counts")
            counts = cls(vocab_size, (*counts.keys, key),
                         (*counts.counts, table["count"].to_numpy().astype(np.int64)))
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
