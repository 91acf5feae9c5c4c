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

from .errors import RnnlmError
from .io import atomic_path
from .kernels import count_values, index_dtype, remap

Level = Literal["char", "word"]
SPLITS = ("train", "val", "test")


def _stream(indices: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices), dictionary)


def tokenize_chars(text: str) -> pa.DictionaryArray:
    """One token per Unicode character; the dictionary is sorted by code point.

    ASCII text uses all 128 ASCII characters as its dictionary, so its bytes are its indices
    (one copy, no pass over the text); characters that never occur just have no tokens.
    """
    if text.isascii():
        indices = np.frombuffer(text.encode("ascii"), dtype=np.int8)
        return _stream(indices, pa.array([chr(c) for c in range(128)], type=pa.string()))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    present = np.flatnonzero(count_values(codes))
    # A code-point -> dictionary-index table turns the encoding into a single lookup.
    lookup = np.zeros(int(present[-1]) + 1, dtype=index_dtype(len(present)))
    lookup[present] = np.arange(len(present))
    dictionary = pa.array([chr(c) for c in present.tolist()], type=pa.string())
    return _stream(remap(codes, lookup), dictionary)


def tokenize_words(text: str) -> pa.DictionaryArray:
    """Whitespace-separated words; the dictionary is in order of first appearance."""
    whole = pa.array([text], type=pa.large_string())
    if text.isascii():
        # Runs of whitespace split once; only leading/trailing whitespace leaves an empty piece
        # at either end, which `str.split()` drops: slicing them off copies nothing.
        words = pc.ascii_split_whitespace(whole).flatten()
        start = int(len(words) > 0 and len(words[0].as_py()) == 0)
        stop = len(words) - int(len(words) > start and len(words[-1].as_py()) == 0)
        words = words[start:stop]
    else:
        words = pc.utf8_split_whitespace(whole).flatten()
        words = words.filter(pc.greater(pc.binary_length(words), 0))
    del whole  # the words hold their own copy; free the text before hashing them
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
    # Rounding the sum drops float noise: 0.7 + 0.2 is 0.8999999999999999, not 0.9.
    return int(train * n_tokens), int(round(train + val, 12) * n_tokens)


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
    chunks = column.chunks
    if not chunks:
        return pa.DictionaryArray.from_arrays(pa.array([], pa.int8()), pa.array([], pa.string()))
    dictionary = chunks[0].dictionary
    if any(not chunk.dictionary.equals(dictionary) for chunk in chunks[1:]):
        # Row groups with dictionaries of their own: unify (with room for the union) and join.
        column = column.cast(pa.dictionary(pa.int32(), pa.string())).unify_dictionaries()
        chunks, dictionary = column.chunks, column.chunks[0].dictionary
    return pa.DictionaryArray.from_arrays(
        pa.concat_arrays([chunk.indices for chunk in chunks]), dictionary
    )
