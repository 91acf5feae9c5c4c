"""Encoding a token file into a memory-mappable .npy of int32 ids, a row group at a time."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from .errors import RnnlmError
from .io import atomic_path
from .kernels import remap
from .token_files import iter_tokens, num_tokens
from .vocab import Vocab


def encode_file(vocab: Vocab, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> int:
    """Write the ids of every token of `src` to `dst` (int32 .npy); return how many.

    The header is the one `np.save` writes; the ids follow with plain sequential writes (a
    memory map would count every page of a multi-GB output as the process's own memory).
    """
    n = num_tokens(src)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.int32)),
              "fortran_order": False, "shape": (n,)}
    with atomic_path(dst) as tmp, tmp.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        dictionary: pa.Array | None = None
        written = 0
        for chunk in iter_tokens(src):
            # The stages write one dictionary for every row group: one lookup table serves all.
            if dictionary is None or not chunk.dictionary.equals(dictionary):
                dictionary, table = chunk.dictionary, vocab.lookup_table(chunk.dictionary)
            f.write(remap(chunk.indices, table).astype(np.int32, copy=False).data)
            written += len(chunk)
        if written != n:
            raise RnnlmError(f"{src}: its metadata says {n} tokens, its row groups hold {written}")
    return n
