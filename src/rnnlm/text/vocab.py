"""The vocabulary: token <-> id, built from the training split only.

`<unk>` is always id 0, reserved tokens follow, then the training tokens by descending count with
ties broken by the token itself, so the same corpus always gives the same ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rnnlm.errors import RnnlmError
from rnnlm.io import atomic_path
from rnnlm.kernels import count_values, index_dtype, remap

UNK = "<unk>"
UNK_ID = 0


def as_stream(tokens: pa.DictionaryArray | Iterable[str]) -> pa.DictionaryArray:
    """Accept a token stream or any iterable of token strings."""
    if isinstance(tokens, pa.DictionaryArray):
        return tokens
    return pa.array(list(tokens), type=pa.string()).dictionary_encode()


class Vocab:
    """Tokens and their training counts, held as one Arrow string array and one int64 array:
    a word vocabulary can have millions of entries, which as Python objects would cost several
    times the memory."""

    def __init__(self, tokens: pa.Array | Sequence[str], counts: np.ndarray | Sequence[int]
                 ) -> None:
        self.token_array = (tokens.cast(pa.string()) if isinstance(tokens, pa.Array)
                            else pa.array(list(tokens), type=pa.string()))
        self.count_array = np.asarray(counts, dtype=np.int64)
        if len(self.token_array) != len(self.count_array):
            raise RnnlmError(f"a vocabulary needs one count per token, not {len(self.count_array)}"
                             f" counts for {len(self.token_array)} tokens")
        if not len(self.token_array) or self.token_array[0].as_py() != UNK:
            raise RnnlmError(f"a vocabulary must start with {UNK!r} at index 0")
        # Each token finds its own position exactly when none is listed twice.
        first = pc.index_in(self.token_array, value_set=self.token_array)
        if not np.array_equal(first.to_numpy(zero_copy_only=False), np.arange(len(self))):
            raise RnnlmError("a vocabulary must not list a token twice")

    def __len__(self) -> int:
        return len(self.token_array)

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        return tuple(self.token_array.to_pylist())

    @cached_property
    def counts(self) -> tuple[int, ...]:
        """Training-split count of each token (`<unk>`: the tokens it replaced)."""
        return tuple(self.count_array.tolist())

    @classmethod
    def build(
        cls, train: pa.DictionaryArray, min_freq: int = 0, reserved: Sequence[str] = ()
    ) -> Vocab:
        """Count the training stream and keep tokens seen at least `min_freq` times."""
        indices = train.indices.to_numpy(zero_copy_only=False)
        counts = count_values(indices, minlength=len(train.dictionary))
        return cls.from_counts(train.dictionary, counts, min_freq, reserved)

    @classmethod
    def from_counts(
        cls, dictionary: pa.Array, counts: np.ndarray, min_freq: int = 0,
        reserved: Sequence[str] = (),
    ) -> Vocab:
        """The vocabulary of training tokens `dictionary` seen `counts` times (one per entry)."""
        special = [UNK, *reserved]
        strings = dictionary.cast(pa.string())
        table = pa.table({"token": strings, "count": counts})
        keep = pc.and_(
            pc.greater_equal(table["count"], max(min_freq, 1)),
            pc.invert(pc.is_in(table["token"], value_set=pa.array(special, pa.string()))),
        )
        table = table.filter(keep)
        order = [("count", "descending"), ("token", "ascending")]
        table = table.take(pc.sort_indices(table, order))
        kept_counts = table["count"].to_numpy()
        # Reserved tokens that occur literally in the text keep their own counts.
        where = pc.index_in(pa.array(reserved, pa.string()), value_set=strings)
        reserved_counts = [0 if i is None else int(counts[i]) for i in where.to_pylist()]
        unk_count = int(counts.sum()) - int(kept_counts.sum()) - sum(reserved_counts)
        return cls(
            pa.concat_arrays([pa.array(special, pa.string()),
                              table["token"].combine_chunks()]),
            np.concatenate([[unk_count, *reserved_counts], kept_counts]),
        )

    def lookup_table(self, dictionary: pa.Array) -> np.ndarray:
        """For each string in `dictionary`, its id here (unknown strings -> `<unk>`)."""
        positions = pc.index_in(dictionary.cast(pa.string()), value_set=self.token_array)
        return positions.fill_null(UNK_ID).to_numpy(zero_copy_only=False).astype(self.id_dtype)

    @property
    def id_dtype(self) -> type[np.signedinteger]:
        """The narrowest integer type holding every id (int8 for a character vocabulary)."""
        return index_dtype(len(self))

    def encode(self, tokens: pa.DictionaryArray | Iterable[str]) -> np.ndarray:
        """Token ids as `id_dtype`: one gather through a per-type table, no per-token Python.

        Narrow ids keep a character stream at one byte a token; widen them where a fixed
        on-disk type is wanted (the partition stage stores int32).
        """
        stream = as_stream(tokens)
        return remap(stream.indices, self.lookup_table(stream.dictionary))

    def decode(self, ids: Iterable[int] | np.ndarray) -> list[str]:
        return self.token_array.take(pa.array(np.asarray(ids, dtype=np.int64))).to_pylist()

    def to_table(self) -> pa.Table:
        return pa.table({
            "index": pa.array(np.arange(len(self), dtype=np.int32)),
            "token": self.token_array,
            "count": pa.array(self.count_array),
        })

    @classmethod
    def from_table(cls, table: pa.Table) -> Vocab:
        table = table.sort_by("index")
        if not np.array_equal(table["index"].to_numpy(), np.arange(table.num_rows)):
            raise RnnlmError("the vocabulary table's index column must be 0..n-1 without gaps")
        return cls(table["token"].combine_chunks(), table["count"].to_numpy())

    def save(self, path: str | os.PathLike[str]) -> None:
        with atomic_path(path) as tmp:
            pq.write_table(self.to_table(), tmp)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocab:
        return cls.from_table(pq.read_table(path))

    @staticmethod
    def size_of(path: str | os.PathLike[str]) -> int:
        """The number of tokens of a saved vocabulary, read from its file's metadata alone."""
        return int(pq.ParquetFile(path).metadata.num_rows)
