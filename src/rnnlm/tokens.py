"""Token streams: tokenising cleaned text and splitting it into train/val/test.

A token stream is a `pyarrow.DictionaryArray`: one index per token into a dictionary of the
distinct token strings. It is built without a Python loop per token (numpy for characters, Arrow's
C++ string kernels for words); `token_files` stores it as the indices and the dictionary apart.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import RnnlmError
from .kernels import count_values, index_dtype, remap

Level = Literal["char", "word"]
SPLITS = ("train", "val", "test")


def stream_of(indices: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    """The token stream of `indices` into `dictionary`."""
    return pa.DictionaryArray.from_arrays(pa.array(indices), dictionary)


def tokenize_chars(text: str) -> pa.DictionaryArray:
    """One token per Unicode character; the dictionary is sorted by code point.

    ASCII text uses all 128 ASCII characters as its dictionary, so its bytes are its indices
    (one copy, no pass over the text); characters that never occur just have no tokens.
    """
    if text.isascii():
        indices = np.frombuffer(text.encode("ascii"), dtype=np.int8)
        return stream_of(indices, pa.array([chr(c) for c in range(128)], type=pa.string()))
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    present = np.flatnonzero(count_values(codes))
    # A code-point -> dictionary-index table turns the encoding into a single lookup.
    lookup = np.zeros(int(present[-1]) + 1, dtype=index_dtype(len(present)))
    lookup[present] = np.arange(len(present))
    dictionary = pa.array([chr(c) for c in present.tolist()], type=pa.string())
    return stream_of(remap(codes, lookup), dictionary)


# Spaces to str.split and Arrow's utf8 split, but not to its ascii split.
_NOT_ASCII_SPACES = (b"\x1c", b"\x1d", b"\x1e", b"\x1f")


def split_words(data: bytes) -> pa.Array:
    """The whitespace-separated words of UTF-8 `data` (as `str.split()` finds them)."""
    # One string over the bytes as they are (no copy; `data` is UTF-8 already).
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    whole = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    if data.isascii() and not any(c in data for c in _NOT_ASCII_SPACES):
        # Runs of whitespace split once; only leading/trailing whitespace leaves an empty piece
        # at either end, which `str.split()` drops: slicing them off copies nothing.
        words = pc.ascii_split_whitespace(whole).flatten()
        start = int(len(words) > 0 and len(words[0].as_py()) == 0)
        stop = len(words) - int(len(words) > start and len(words[-1].as_py()) == 0)
        return words[start:stop]
    words = pc.utf8_split_whitespace(whole).flatten()
    return words.filter(pc.greater(pc.binary_length(words), 0))


def tokenize_words(text: str) -> pa.DictionaryArray:
    """Whitespace-separated words; the dictionary is in order of first appearance."""
    words = split_words(text.encode("utf-8"))
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
    return stream_of(np.ascontiguousarray(indices), stream.dictionary)


def split_bounds(n_tokens: int, train: float, val: float) -> tuple[int, int]:
    """Contiguous split boundaries: train = [0, b1), val = [b1, b2), test = [b2, n)."""
    # Rounding the sum drops float noise: 0.7 + 0.2 is 0.8999999999999999, not 0.9.
    return int(train * n_tokens), int(round(train + val, 12) * n_tokens)


def check_split_sizes(sizes: dict[str, int]) -> None:
    """Every split needs at least 2 tokens: one to condition on, one to predict."""
    total = sum(sizes.values())
    for name, size in sizes.items():
        if size < 2:
            raise RnnlmError(
                f"the {name} split has {size} tokens of {total} in all; a split needs"
                " at least 2 (one to condition on, one to predict): use a longer corpus or"
                " larger split fractions"
            )


def split_stream(
    stream: pa.DictionaryArray, train: float, val: float
) -> dict[str, pa.DictionaryArray]:
    """Cut the stream into contiguous train/val/test slices (zero-copy views)."""
    b1, b2 = split_bounds(len(stream), train, val)
    parts = {"train": stream[:b1], "val": stream[b1:b2], "test": stream[b2:]}
    check_split_sizes({name: len(part) for name, part in parts.items()})
    return parts
