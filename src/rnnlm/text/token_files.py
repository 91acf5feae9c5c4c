"""The token files: each split's tokens as indices into one dictionary, stored once; written
from whole splits in memory or streamed from a cleaned-text file.

    dictionary.parquet   index (int32), token (string): the distinct tokens of the whole text
    train.parquet        index: the split's tokens in order, each the row of its dictionary entry
    val.parquet          (int8 or int16 for characters, the narrowest type that holds every
    test.parquet          index; int32 for words)

The dictionary is a file of its own because a dictionary-encoded Parquet column repeats its
dictionary in every row group: with the millions of distinct words of a large corpus, those
copies outweighed the tokens tenfold. With pandas, join a split to the dictionary on `index`.

The splits are read a row group at a time, so counting and encoding them take memory for the
dictionary and one row group, whatever the size of the corpus.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rnnlm.errors import RnnlmError
from rnnlm.io import atomic_dir
from rnnlm.kernels import add_counts
from rnnlm.text.pieces import read_pieces
from rnnlm.text.splits import SPLITS, check_split_sizes, split_bounds
from rnnlm.text.tokenizers import Level, Piece, stream_of, tokenizer

DICTIONARY_FILE = "dictionary.parquet"
ROW_GROUP = 1 << 20  # tokens per row group of a split file


def split_path(directory: str | os.PathLike[str], split: str) -> Path:
    return Path(directory) / f"{split}.parquet"


def _existing(path: Path) -> Path:
    if not path.exists():
        raise RnnlmError(f"{path} is missing: run the tokenize stage (dvc repro tokenize)")
    return path


def write_dictionary(directory: str | os.PathLike[str], dictionary: pa.Array) -> None:
    table = pa.table({"index": pa.array(np.arange(len(dictionary), dtype=np.int32)),
                      "token": dictionary.cast(pa.string())})
    pq.write_table(table, Path(directory) / DICTIONARY_FILE)


def read_dictionary(directory: str | os.PathLike[str]) -> pa.Array:
    """The token strings, in index order."""
    path = _existing(Path(directory) / DICTIONARY_FILE)
    table = pq.read_table(path)
    if not np.array_equal(table.column("index").to_numpy(), np.arange(table.num_rows)):
        raise RnnlmError(f"{path}: its `index` column is not 0, 1, 2, ...; rerun tokenize")
    return table.column("token").combine_chunks()


@contextlib.contextmanager
def split_writer(directory: str | os.PathLike[str], split: str,
                 index_type: np.dtype) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer of one split's indices (the callers write a new directory whole)."""
    schema = pa.schema([("index", pa.from_numpy_dtype(index_type))])
    with pq.ParquetWriter(split_path(directory, split), schema) as writer:
        yield writer


def indices_table(indices: np.ndarray) -> pa.Table:
    return pa.table({"index": pa.array(indices)})


def num_tokens(directory: str | os.PathLike[str], split: str) -> int:
    """Tokens in the split, from its metadata (nothing is read)."""
    return pq.ParquetFile(_existing(split_path(directory, split))).metadata.num_rows


def iter_indices(directory: str | os.PathLike[str], split: str) -> Iterator[np.ndarray]:
    """The split's dictionary indices in order, one array per row group."""
    with pq.ParquetFile(_existing(split_path(directory, split))) as parquet:
        for group in range(parquet.num_row_groups):
            column = parquet.read_row_group(group, columns=["index"]).column("index")
            yield column.combine_chunks().to_numpy(zero_copy_only=False)


@dataclass(frozen=True, eq=False)
class TokenCounts:
    """How often each dictionary entry occurs in a split."""

    dictionary: pa.Array  # distinct token strings
    counts: np.ndarray  # int64, one per dictionary entry

    @property
    def tokens(self) -> int:
        return int(self.counts.sum())

    @property
    def types(self) -> int:
        return int(np.count_nonzero(self.counts))


def count_tokens(directory: str | os.PathLike[str]) -> dict[str, TokenCounts]:
    """Count each split row group by row group."""
    dictionary = read_dictionary(directory)
    counts = {}
    for split in SPLITS:
        total = np.zeros(len(dictionary), dtype=np.int64)
        for indices in iter_indices(directory, split):
            add_counts(total, indices)
        counts[split] = TokenCounts(dictionary, total)
    return counts



def read_indices(directory: str | os.PathLike[str], split: str,
                 limit: int | None = None) -> np.ndarray:
    """The split's dictionary indices: all, or the first `limit`."""
    limit = num_tokens(directory, split) if limit is None else limit
    parts: list[np.ndarray] = []
    taken = 0
    for indices in iter_indices(directory, split):
        if taken >= limit:
            break
        parts.append(indices[: limit - taken])
        taken += len(parts[-1])
    if not parts:  # no row group read: an empty array of the column's type
        schema = pq.read_schema(split_path(directory, split))
        return np.zeros(0, dtype=schema.field("index").type.to_pandas_dtype())
    return np.concatenate(parts)


def read_tokens(directory: str | os.PathLike[str], split: str,
                limit: int | None = None) -> pa.DictionaryArray:
    """The split's tokens as one dictionary-encoded stream: all, or the first `limit`."""
    return stream_of(read_indices(directory, split, limit), read_dictionary(directory))


def write_token_files(directory: str | os.PathLike[str],
                      splits: Mapping[str, pa.DictionaryArray]) -> None:
    """Write whole in-memory splits (slices of one stream: they share its dictionary)."""
    dictionary = next(iter(splits.values())).dictionary
    if any(not stream.dictionary.equals(dictionary) for stream in splits.values()):
        raise RnnlmError("the splits must share one dictionary: slice them from one stream")
    with atomic_dir(directory) as out_dir:
        write_dictionary(out_dir, dictionary)
        for name, stream in splits.items():
            indices = stream.indices.to_numpy(zero_copy_only=False)
            with split_writer(out_dir, name, indices.dtype) as writer:
                writer.write_table(indices_table(indices), row_group_size=ROW_GROUP)


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
        self.writers[name].write_table(indices_table(ids),
                                       row_group_size=ROW_GROUP)

    def write(self, ids: np.ndarray) -> None:
        start, stop = self.position, self.position + len(ids)
        for name, (lo, hi) in self.bounds.items():
            begin = max(lo, start)
            while begin < min(hi, stop):
                # Up to the end of the split's current row group.
                group_end = lo + ((begin - lo) // ROW_GROUP + 1) * ROW_GROUP
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

    Two passes, memory bounded by the piece size (and the dictionary): the first counts the
    tokens (the split boundaries need N) and finds the dictionary the whole-text tokenizer would
    build; the second writes each split's indices. The output equals `write_token_files` of
    `split_stream(tokenize(text))`. `reverse` reverses the whole stream before it is split.
    Returns the tokens in each split.
    """
    tokens_of = tokenizer(level)
    sep = separator.encode("utf-8") if separator else None
    src = Path(src)
    with contextlib.ExitStack() as stack:
        out_dir = stack.enter_context(atomic_dir(directory))
        f = stack.enter_context(open(src, "rb"))
        stream = stack.enter_context(tokens_of.streaming(sep, out_dir))
        pieces: list[Piece] = []
        n = 0
        for offset, piece in read_pieces(f, 0, src.stat().st_size, chunk_size, stream.cut,
                                         source=str(src)):
            count = stream.count(piece)
            pieces.append(Piece(offset, len(piece), n, count))
            n += count
        b1, b2 = split_bounds(n, train, val)
        bounds = {"train": (0, b1), "val": (b1, b2), "test": (b2, n)}
        check_split_sizes({name: hi - lo for name, (lo, hi) in bounds.items()})
        write_dictionary(out_dir, stream.dictionary())
        writers = {name: stack.enter_context(split_writer(out_dir, name, stream.index_type))
                   for name in SPLITS}
        out = _SplitWriter(writers, bounds)
        order = range(len(pieces))
        for i in reversed(order) if reverse else order:
            ids = stream.encode(i, pieces[i], f)
            out.write(ids[::-1] if reverse else ids)
    return {name: hi - lo for name, (lo, hi) in bounds.items()}
