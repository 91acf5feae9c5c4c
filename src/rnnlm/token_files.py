"""Reading the token Parquet files a row group at a time: counts and prefixes in bounded memory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .kernels import count_values
from .tokens import join_chunks


def num_tokens(path: str | os.PathLike[str]) -> int:
    """Tokens in the file, from its metadata (nothing is read)."""
    return pq.ParquetFile(path).metadata.num_rows


def iter_tokens(path: str | os.PathLike[str]) -> Iterator[pa.DictionaryArray]:
    """The file's token stream in order, one dictionary-encoded array per row group (or part)."""
    with pq.ParquetFile(path) as parquet:
        for group in range(parquet.num_row_groups):
            column = parquet.read_row_group(group, columns=["token"]).column("token")
            for chunk in column.chunks:
                yield chunk if pa.types.is_dictionary(chunk.type) else chunk.dictionary_encode()


@dataclass(frozen=True, eq=False)
class TokenCounts:
    """How often each distinct token occurs in a stream."""

    dictionary: pa.Array  # distinct token strings
    counts: np.ndarray  # int64, one per dictionary entry

    @property
    def tokens(self) -> int:
        return int(self.counts.sum())

    @property
    def types(self) -> int:
        return int(np.count_nonzero(self.counts))


def count_tokens(path: str | os.PathLike[str]) -> TokenCounts:
    """Count a token file row group by row group (the stages write one dictionary for all)."""
    dictionary = pa.array([], type=pa.string())
    counts = np.zeros(0, dtype=np.int64)
    for chunk in iter_tokens(path):
        chunk_counts = count_values(chunk.indices.to_numpy(zero_copy_only=False),
                                    minlength=len(chunk.dictionary))
        if not chunk.dictionary.equals(dictionary):
            # A dictionary of its own: append its new strings, then add the counts by string.
            strings = chunk.dictionary.cast(pa.string())
            new = pc.invert(pc.is_in(strings, value_set=dictionary))
            if pc.any(new).as_py():
                dictionary = pa.concat_arrays([dictionary, strings.filter(new)])
                counts = np.concatenate([counts, np.zeros(len(dictionary) - len(counts), np.int64)])
            if not strings.equals(dictionary):
                where = pc.index_in(strings, value_set=dictionary).to_numpy(zero_copy_only=False)
                chunk_counts = np.bincount(where, weights=chunk_counts,
                                           minlength=len(dictionary)).astype(np.int64)
        counts += chunk_counts
    return TokenCounts(dictionary, counts)


def head_tokens(path: str | os.PathLike[str], limit: int) -> pa.DictionaryArray:
    """The first `limit` tokens of the file (all of them if it has fewer)."""
    parts: list[pa.DictionaryArray] = []
    taken = 0
    for chunk in iter_tokens(path):
        if taken >= limit:
            break
        parts.append(chunk[: limit - taken])
        taken += len(parts[-1])
    return join_chunks(parts)
