"""Token streams: tokenising cleaned text and splitting it into train/val/test.

A token stream is a `pyarrow.DictionaryArray`: one int32 index per token into a dictionary of the
distinct token strings. It is built without a Python loop per token (numpy for characters, Arrow's
C++ string kernels for words), is written to Parquet as a dictionary column, and pandas opens it as
a categorical.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .counting import count_values
from .errors import RnnlmError
from .io import atomic_path

Level = Literal["char", "word"]
SPLITS = ("train", "val", "test")


def index_dtype(n_types: int) -> type[np.signedinteger]:
    """The narrowest signed index type for a dictionary of `n_types` strings.

    Character streams have few types, so int8 indices keep them at one byte a token.
    """
    for dtype in (np.int8, np.int16):
        if n_types <= np.iinfo(dtype).max + 1:
            return dtype
    return np.int32


def _stream(indices: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices), dictionary)


def tokenize_chars(text: str) -> pa.DictionaryArray:
    """One token per Unicode character; the dictionary is sorted by code point."""
    if text.isascii():
        codes: np.ndarray = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    else:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    present = np.flatnonzero(count_values(codes))
    # A code-point -> dictionary-index table turns the encoding into a single gather.
    dtype = index_dtype(len(present))
    lookup = np.zeros(int(present[-1]) + 1 if len(present) else 1, dtype=dtype)
    lookup[present] = np.arange(len(present), dtype=dtype)
    dictionary = pa.array([chr(c) for c in present.tolist()], type=pa.string())
    return _stream(lookup[codes], dictionary)


def tokenize_words(text: str) -> pa.DictionaryArray:
    """Whitespace-separated words; the dictionary is in order of first appearance."""
    whole = pa.array([text], type=pa.large_string())
    split = pc.ascii_split_whitespace if text.isascii() else pc.utf8_split_whitespace
    words = split(whole).flatten()
    # Leading or trailing whitespace yields empty pieces; `str.split()` drops them, so do we.
    words = words.filter(pc.greater(pc.binary_length(words), 0))
    encoded = words.dictionary_encode()
    return pa.DictionaryArray.from_arrays(
        encoded.indices, encoded.dictionary.cast(pa.string())
    )


def tokenize(text: str, level: Level) -> pa.DictionaryArray:
    if level == "char":
        return tokenize_chars(text)
    if level == "word":
        return tokenize_words(text)
    raise RnnlmError(f"unknown tokenize.level {level!r}; use 'char' or 'word'")


def reverse_stream(stream: pa.DictionaryArray) -> pa.DictionaryArray:
    """The same tokens right to left, for scoring models on the reversed language."""
    indices = stream.indices.to_numpy(zero_copy_only=False)[::-1]
    return _stream(np.ascontiguousarray(indices), stream.dictionary)


def split_bounds(n_tokens: int, train: float, val: float) -> tuple[int, int]:
    """Contiguous split boundaries: train = [0, b1), val = [b1, b2), test = [b2, n)."""
    return int(train * n_tokens), int((train + val) * n_tokens)


def split_stream(
    stream: pa.DictionaryArray, train: float, val: float
) -> dict[str, pa.DictionaryArray]:
    """Cut the stream into contiguous train/val/test slices (zero-copy views)."""
    b1, b2 = split_bounds(len(stream), train, val)
    parts = {"train": stream[:b1], "val": stream[b1:b2], "test": stream[b2:]}
    for name, part in parts.items():
        if len(part) < 2:
            raise RnnlmError(
                f"the {name} split has {len(part)} tokens of {len(stream)} in all; a split needs"
                " at least 2 (one to condition on, one to predict): use a longer corpus or"
                " larger split fractions"
            )
    return parts


def write_tokens(path: str | os.PathLike[str], stream: pa.DictionaryArray) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(pa.table({"token": stream}), tmp)


def read_tokens(path: str | os.PathLike[str]) -> pa.DictionaryArray:
    column = pq.read_table(path, columns=["token"]).column("token")
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    # Row groups may carry their own dictionaries: unify before joining them into one array.
    combined = column.unify_dictionaries().combine_chunks()
    if isinstance(combined, pa.ChunkedArray):  # an empty column stays chunked
        combined = pa.concat_arrays(combined.chunks) if combined.num_chunks else combined
    return combined
