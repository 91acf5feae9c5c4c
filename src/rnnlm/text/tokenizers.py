"""Tokenizers: cleaned text to a token stream, and tokens back to text.

A token stream is a `pyarrow.DictionaryArray`: one index per token into a dictionary of the
distinct token strings. It is built without a Python loop per token (numpy for characters, Arrow's
C++ string kernels for words); `token_files` stores it as the indices and the dictionary apart.

Each tokenizer has both forms of its work: `tokenize` a string, and `streaming`, which counts and
encodes a large file piece by piece (the two passes of `token_files.tokenize_file`) to the same
stream. A new tokenizer is one class with these three methods and one entry in TOKENIZERS (and
the value in the settings' `Level`). The learned one, byte-pair encoding, lives in `bpe`: its
token files are written by its own function, which learns the merges on the training split.

A document separator (between the documents of a multi-document corpus) is one token at either
level, never split into characters.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rnnlm.errors import RnnlmError
from rnnlm.kernels import count_values, index_dtype, remap
from rnnlm.text.pieces import Cut, utf8_cut

Level = Literal["char", "word", "bpe"]


def stream_of(indices: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    """The token stream of `indices` into `dictionary`."""
    return pa.DictionaryArray.from_arrays(pa.array(indices), dictionary)


@dataclass(frozen=True)
class Piece:
    """A piece of a file as the first pass counted it."""

    offset: int  # in the file
    size: int  # bytes
    first: int  # index of its first token in the stream
    count: int  # tokens


class TokenStream(Protocol):
    """The streaming form: pass 1 counts each piece (in order) and then gives the dictionary;
    pass 2 encodes each piece (in any order) into indices of that dictionary."""

    cut: Cut  # where a piece may end without cutting a token in two
    index_type: np.dtype[Any]  # of the encoded indices (valid once the dictionary is known)

    def count(self, piece: bytes) -> int: ...

    def dictionary(self) -> pa.Array: ...

    def encode(self, index: int, piece: Piece, source: BinaryIO) -> np.ndarray: ...


class Tokenizer(Protocol):
    level: Level

    def tokenize(self, text: str) -> pa.DictionaryArray: ...

    def join(self, tokens: Sequence[str]) -> str:
        """Text whose tokenization gives `tokens` back."""
        ...

    def streaming(self, separator: bytes | None, workdir: Path
                  ) -> AbstractContextManager[TokenStream]:
        """A TokenStream for one file; temporary files it needs live in `workdir`."""
        ...


_SPACES = b" \t\n\r\x0b\x0c"  # whitespace to both str.split and Arrow: a word never spans one
_MAX_CODE = 0x110000


def _word_cut(data: bytes) -> int:
    """Just after the last whitespace byte: no word (nor a separator: it has none) is cut."""
    return max(data.rfind(c) for c in _SPACES) + 1


def separator_cut(separator: bytes) -> Cut:
    """A character boundary that leaves no beginning of `separator` at the end of the piece."""

    def cut(data: bytes) -> int:
        end = utf8_cut(data)
        for j in range(min(len(separator) - 1, end), 0, -1):
            if data[end - j : end] == separator[:j]:
                return end - j
        return end

    return cut


def _segments(piece: bytes, separator: bytes | None) -> list[bytes]:
    """The piece's text between separators (one segment when there is no separator)."""
    return piece.split(separator) if separator else [piece]


def _codes(segment: bytes) -> np.ndarray:
    if segment.isascii():
        return np.frombuffer(segment, dtype=np.uint8)
    return np.frombuffer(segment.decode("utf-8").encode("utf-32-le"), dtype=np.uint32)


class _CharStream:
    """Character tokens: the dictionary is every ASCII character when the text is ASCII, else
    the code points present, sorted; the separator (if any) comes last."""

    def __init__(self, separator: bytes | None) -> None:
        # A one-character separator is an ordinary character token.
        self.separator = separator if separator and len(separator.decode()) > 1 else None
        self.cut: Cut = separator_cut(self.separator) if self.separator else utf8_cut
        self.present = np.zeros(_MAX_CODE, dtype=bool)
        self.ascii = True

    def count(self, piece: bytes) -> int:
        segments = _segments(piece, self.separator)
        n = len(segments) - 1
        for segment in segments:
            codes = _codes(segment)
            self.ascii = self.ascii and codes.dtype == np.uint8
            self.present[codes] = True
            n += len(codes)
        return n

    def dictionary(self) -> pa.Array:
        codes = range(128) if self.ascii else np.flatnonzero(self.present).tolist()
        tokens = [chr(c) for c in codes] + ([self.separator.decode()] if self.separator else [])
        self.index_type: np.dtype[Any] = np.dtype(index_dtype(len(tokens)))
        self.lookup = np.full(max(codes, default=0) + 1, -1, dtype=self.index_type)
        self.lookup[list(codes)] = np.arange(len(codes))
        self.separator_id = len(tokens) - 1
        return pa.array(tokens, type=pa.string())

    def encode(self, index: int, piece: Piece, source: BinaryIO) -> np.ndarray:
        data = os.pread(source.fileno(), piece.size, piece.offset)  # re-read, not kept
        if self.ascii and not self.separator:
            return np.frombuffer(data, dtype=np.int8)  # ASCII bytes are their own indices
        parts: list[np.ndarray] = []
        for i, segment in enumerate(_segments(data, self.separator)):
            if i:
                parts.append(np.array([self.separator_id], dtype=self.lookup.dtype))
            codes = _codes(segment)
            # Byte codes index a table of at most 256 entries (remap's byte-to-byte path).
            parts.append(remap(codes, self.lookup[:256] if codes.itemsize == 1 else self.lookup))
        return np.concatenate(parts)


class _WordStream:
    """Word tokens, indexed by order of first appearance.

    The first pass encodes each piece on its own (its local dictionary, in its order of first
    appearance, and its local ids, which wait in a temporary file) and merges the local
    dictionaries into the known words a batch at a time, once the pending ones hold as many
    words as the known ones. A merge hashes the pending words and probes the known ones, no
    more of them than pending words, so the first pass costs in proportion to the text, not to
    the text times the vocabulary as merging each piece into all the known words would; what
    waits is never more than the vocabulary and a piece's words. A merge gives each pending
    piece its map from local to global ids, kept in a second temporary file; the second pass
    reads both and applies the map.
    """

    def __init__(self, separator: bytes | None, spool: BinaryIO, maps: BinaryIO) -> None:
        self.separator = separator
        self.cut: Cut = _word_cut
        self.spool = spool  # each piece's local ids, int32, in order
        self.maps = maps  # each piece's local-to-global map, int32, in order
        self.known = pa.array([], type=pa.large_string())
        self.pending: list[pa.Array] = []  # local dictionaries not merged yet
        self.waiting = 0  # words in them
        self.sizes: list[int] = []  # per piece: words in its local dictionary (= its map's length)
        self.index_type: np.dtype[Any] = np.dtype(np.int32)  # the spool's and the files' ids

    def _words(self, piece: bytes) -> pa.Array:
        separator = pa.array([(self.separator or b"").decode()], type=pa.large_string())
        parts = []
        for i, segment in enumerate(_segments(piece, self.separator)):
            if i:
                parts.append(separator)
            parts.append(split_words(segment))
        return pa.concat_arrays(parts) if len(parts) > 1 else parts[0]

    def count(self, piece: bytes) -> int:
        encoded = self._words(piece).dictionary_encode()
        ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
        self.spool.write(ids.tobytes())
        self.pending.append(encoded.dictionary)
        self.sizes.append(len(encoded.dictionary))
        self.waiting += len(encoded.dictionary)
        if self.waiting >= len(self.known):
            self._merge()
        return len(ids)

    def _merge(self) -> None:
        """Merge the pending dictionaries into the known words; write their maps."""
        if not self.waiting:
            self.pending = []
            return
        # The pending words once each, in order of first appearance (one memo table over the
        # chunks, no copy of them), then the known words looked up among them: the hash table
        # is over the pending words, the known ones are only probed.
        encoded = pa.chunked_array(self.pending).dictionary_encode()
        words = encoded.chunk(0).dictionary
        where = pc.index_in(self.known, value_set=words)
        found = where.is_valid().to_numpy(zero_copy_only=False)
        ids = np.full(len(words), -1, dtype=np.int32)
        ids[where.filter(where.is_valid()).to_numpy()] = np.flatnonzero(found)
        new = ids < 0
        ids[new] = len(self.known) + np.arange(int(new.sum()), dtype=np.int32)
        # Each piece's map follows the previous one's (the encoding drops empty chunks).
        local = np.concatenate([chunk.indices.to_numpy() for chunk in encoded.chunks])
        self.maps.write(remap(local, ids).tobytes())
        if new.any():
            self.known = pa.concat_arrays([self.known, words.filter(pa.array(new))])
        self.pending, self.waiting = [], 0

    def dictionary(self) -> pa.Array:
        self._merge()
        self.spool.flush()
        self.maps.flush()
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)])
        return self.known.cast(pa.string())

    def encode(self, index: int, piece: Piece, source: BinaryIO) -> np.ndarray:
        """The global ids of the `index`-th piece's words."""
        # Read, not memory-mapped: mapped pages would count as the process's memory.
        data = os.pread(self.spool.fileno(), piece.count * 4, piece.first * 4)
        ids = np.frombuffer(data, dtype=np.int32)
        start, size = int(self.starts[index]), self.sizes[index]
        mapping = np.frombuffer(os.pread(self.maps.fileno(), size * 4, start * 4), dtype=np.int32)
        return remap(ids, mapping)


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


class CharTokenizer:
    """One token per Unicode character."""

    level: Level = "char"

    def tokenize(self, text: str) -> pa.DictionaryArray:
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

    def join(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)

    def streaming(self, separator: bytes | None, workdir: Path
                  ) -> AbstractContextManager[TokenStream]:
        return contextlib.nullcontext(_CharStream(separator))


class WordTokenizer:
    """Whitespace-separated words."""

    level: Level = "word"

    def tokenize(self, text: str) -> pa.DictionaryArray:
        """Whitespace-separated words; the dictionary is in order of first appearance."""
        words = split_words(text.encode("utf-8"))
        encoded = words.dictionary_encode()
        return pa.DictionaryArray.from_arrays(
            encoded.indices, encoded.dictionary.cast(pa.string())
        )

    def join(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)

    @contextlib.contextmanager
    def streaming(self, separator: bytes | None, workdir: Path) -> Iterator[TokenStream]:
        with tempfile.TemporaryFile(dir=workdir) as spool, \
                tempfile.TemporaryFile(dir=workdir) as maps:
            yield _WordStream(separator, spool, maps)


TOKENIZERS: dict[Level, Tokenizer] = {"char": CharTokenizer(), "word": WordTokenizer()}


def tokenizer(level: Level) -> Tokenizer:
    """The tokenizer of a level that learns nothing from the text (char, word)."""
    if level == "bpe":
        raise RnnlmError("the bpe level's tokenizer is learned: open its tokenizer.json with "
                         "rnnlm.text.bpe.BpeTokenizer.load")
    if level not in TOKENIZERS:
        raise RnnlmError(f"unknown tokenize.level {level!r}; use one of "
                         f"{', '.join(map(repr, TOKENIZERS))}")
    return TOKENIZERS[level]


def tokenize(text: str, level: Level) -> pa.DictionaryArray:
    return tokenizer(level).tokenize(text)
