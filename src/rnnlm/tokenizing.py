"""Tokenizing a cleaned-text file into the train/val/test token files, piece by piece.

Two passes, memory bounded by the piece size (and the dictionary): the first counts the tokens
(the split boundaries need N) and finds the dictionary the whole-text `tokenize` would build;
the second writes each split's indices into it (the format is `token_files`'s). Word ids are
found in the first pass (a word's index is its order of first appearance, which never changes
as more text is read): each piece's ids in its own dictionary wait in a temporary file, with
the map from them to the whole dictionary's; characters are simply re-read.
The output equals `tokenize` + `split_stream` of the whole text.

A document separator (between the documents of a multi-document corpus) is one token at
either level, never split into characters.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import token_files
from .chunks import Cut, read_pieces, utf8_cut
from .errors import RnnlmError
from .io import atomic_dir
from .kernels import index_dtype, remap
from .tokens import SPLITS, Level, check_split_sizes, split_bounds, split_words

_SPACES = b" \t\n\r\x0b\x0c"  # whitespace to both str.split and Arrow: a word never spans one
_MAX_CODE = 0x110000


@dataclass(frozen=True)
class _Piece:
    offset: int  # in the file
    size: int  # bytes
    first: int  # index of its first token in the stream
    count: int  # tokens


def _word_cut(data: bytes) -> int:
    """Just after the last whitespace byte: no word (nor a separator: it has none) is cut."""
    return max(data.rfind(c) for c in _SPACES) + 1


def _separator_cut(separator: bytes) -> Cut:
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


class _Chars:
    """Character tokens: the dictionary is every ASCII character when the text is ASCII, else
    the code points present, sorted; the separator (if any) comes last."""

    def __init__(self, separator: bytes | None) -> None:
        # A one-character separator is an ordinary character token.
        self.separator = separator if separator and len(separator.decode()) > 1 else None
        self.cut = _separator_cut(self.separator) if self.separator else utf8_cut
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
        self.index_type = index_dtype(len(tokens))
        self.lookup = np.full(max(codes, default=0) + 1, -1, dtype=self.index_type)
        self.lookup[list(codes)] = np.arange(len(codes))
        self.separator_id = len(tokens) - 1
        return pa.array(tokens, type=pa.string())

    def encode(self, piece: bytes) -> np.ndarray:
        if self.ascii and not self.separator:
            return np.frombuffer(piece, dtype=np.int8)  # ASCII bytes are their own indices
        parts: list[np.ndarray] = []
        for i, segment in enumerate(_segments(piece, self.separator)):
            if i:
                parts.append(np.array([self.separator_id], dtype=self.lookup.dtype))
            codes = _codes(segment)
            # Byte codes index a table of at most 256 entries (remap's byte-to-byte path).
            parts.append(remap(codes, self.lookup[:256] if codes.itemsize == 1 else self.lookup))
        return np.concatenate(parts)


class _Words:
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
        self.cut = _word_cut
        self.spool = spool  # each piece's local ids, int32, in order
        self.maps = maps  # each piece's local-to-global map, int32, in order
        self.known = pa.array([], type=pa.large_string())
        self.pending: list[pa.Array] = []  # local dictionaries not merged yet
        self.waiting = 0  # words in them
        self.sizes: list[int] = []  # per piece: words in its local dictionary (= its map's length)
        self.index_type = np.dtype(np.int32)  # the spool's and the files' ids

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

    def encode(self, index: int, piece: _Piece) -> np.ndarray:
        """The global ids of the `index`-th piece's words."""
        # Read, not memory-mapped: mapped pages would count as the process's memory.
        data = os.pread(self.spool.fileno(), piece.count * 4, piece.first * 4)
        ids = np.frombuffer(data, dtype=np.int32)
        start, size = int(self.starts[index]), self.sizes[index]
        mapping = np.frombuffer(os.pread(self.maps.fileno(), size * 4, start * 4), dtype=np.int32)
        return remap(ids, mapping)


class _SplitWriter:
    """Routes the (possibly reversed) stream, in order, into one Parquet writer per split, in
    row groups of ROW_GROUP tokens as `write_token_files` of the whole split cuts them."""

    def __init__(self, writers: Mapping[str, pq.ParquetWriter],
                 bounds: Mapping[str, tuple[int, int]]) -> None:
        self.writers, self.bounds = writers, bounds
        self.position = 0
        self.pending: dict[str, list[np.ndarray]] = {name: [] for name in writers}

    def _flush(self, name: str) -> None:
        ids = np.concatenate(self.pending[name])
        self.pending[name] = []
        self.writers[name].write_table(token_files.indices_table(ids),
                                       row_group_size=token_files.ROW_GROUP)

    def write(self, ids: np.ndarray) -> None:
        start, stop = self.position, self.position + len(ids)
        for name, (lo, hi) in self.bounds.items():
            begin = max(lo, start)
            while begin < min(hi, stop):
                # Up to the end of the split's current row group.
                group_end = lo + ((begin - lo) // token_files.ROW_GROUP + 1) * token_files.ROW_GROUP
                end = min(group_end, hi, stop)
                self.pending[name].append(np.ascontiguousarray(ids[begin - start : end - start]))
                if end in (group_end, hi):
                    self._flush(name)
                begin = end
        self.position = stop


def tokenize_file(
    src: str | os.PathLike[str],
    directory: str | os.PathLike[str],
    level: Level,
    train: float,
    val: float,
    reverse: bool = False,
    separator: str | None = None,
    chunk_size: int | None = None,
) -> dict[str, int]:
    """Tokenize the UTF-8 file `src` into the token files of `directory` (all or nothing).

    `reverse` reverses the whole stream before it is split. Returns the tokens in each split.
    """
    if level not in ("char", "word"):
        raise RnnlmError(f"unknown tokenize.level {level!r}; use 'char' or 'word'")
    sep = separator.encode("utf-8") if separator else None
    src = Path(src)
    with contextlib.ExitStack() as stack:
        out_dir = stack.enter_context(atomic_dir(directory))
        f = stack.enter_context(open(src, "rb"))
        if level == "char":
            tokens: _Chars | _Words = _Chars(sep)
        else:
            tokens = _Words(sep, stack.enter_context(tempfile.TemporaryFile(dir=out_dir)),
                            stack.enter_context(tempfile.TemporaryFile(dir=out_dir)))
        pieces: list[_Piece] = []
        n = 0
        for offset, piece in read_pieces(f, 0, src.stat().st_size, chunk_size, tokens.cut,
                                         source=str(src)):
            count = tokens.count(piece)
            pieces.append(_Piece(offset, len(piece), n, count))
            n += count
        b1, b2 = split_bounds(n, train, val)
        bounds = {"train": (0, b1), "val": (b1, b2), "test": (b2, n)}
        check_split_sizes({name: hi - lo for name, (lo, hi) in bounds.items()})
        token_files.write_dictionary(out_dir, tokens.dictionary())
        writers = {name: stack.enter_context(token_files.split_writer(out_dir, name,
                                                                      tokens.index_type))
                   for name in SPLITS}
        out = _SplitWriter(writers, bounds)
        order = range(len(pieces))
        for i in reversed(order) if reverse else order:
            piece = pieces[i]
            if isinstance(tokens, _Words):
                ids = tokens.encode(i, piece)
            else:
                ids = tokens.encode(os.pread(f.fileno(), piece.size, piece.offset))
            out.write(ids[::-1] if reverse else ids)
    return {name: hi - lo for name, (lo, hi) in bounds.items()}
