"""Encoding a token file into a memory-mappable .npy of int32 ids, a row group at a time."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from .io import atomic_path
from .kernels import remap
from .token_files import iter_tokens, num_tokens
from .vocab import Vocab


def encode_file(vocab: Vocab, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> int:
    """Write the ids of every token of `src` to `dst` (int32 .npy); return how many."""
    n = num_tokens(src)
    with atomic_path(dst) as tmp:
        if n == 0:  # a memory map cannot be empty
            with tmp.open("wb") as f:
                np.save(f, np.empty(0, dtype=np.int32))
            return 0
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int32, shape=(n,))
        dictionary: pa.Array | None = None
        position = 0
        for chunk in iter_tokens(src):
            # The stages write one dictionary for every row group: one lookup table serves all.
            if dictionary is None or not chunk.dictionary.equals(dictionary):
                dictionary, table = chunk.dictionary, vocab.lookup_table(chunk.dictionary)
            out[position : position + len(chunk)] = remap(chunk.indices, table)
            position += len(chunk)
        out.flush()
        del out  # unmapped before the file is renamed into place
    return n
