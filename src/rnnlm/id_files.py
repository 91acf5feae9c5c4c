"""Encoding a split's token file into a memory-mappable .npy of int32 ids, a row group at a time."""

from __future__ import annotations

import os

import numpy as np

from .errors import RnnlmError
from .io import atomic_path
from .kernels import remap
from .token_files import iter_indices, num_tokens, read_dictionary
from .vocab import Vocab


def encode_file(vocab: Vocab, directory: str | os.PathLike[str], split: str,
                dst: str | os.PathLike[str]) -> int:
    """Write the ids of every token of the split to `dst` (int32 .npy); return how many.

    The header is the one `np.save` writes; the ids follow with plain sequential writes (a
    memory map would count every page of a multi-GB output as the process's own memory).
    """
    n = num_tokens(directory, split)
    # One lookup table from dictionary index to vocabulary id serves every row group.
    table = vocab.lookup_table(read_dictionary(directory))
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.int32)),
              "fortran_order": False, "shape": (n,)}
    with atomic_path(dst) as tmp, tmp.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        written = 0
        for indices in iter_indices(directory, split):
            f.write(remap(indices, table).astype(np.int32, copy=False).data)
            written += len(indices)
        if written != n:
            raise RnnlmError(f"the {split} split: its metadata says {n} tokens, its row groups"
                             f" hold {written}; rerun tokenize")
    return n
