"""Encoding the splits' token files into memory-mappable .npy files of int32 ids."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from rnnlm.io import atomic_path
from rnnlm.kernels import remap
from rnnlm.text.token_files import iter_indices, num_tokens, read_dictionary
from rnnlm.text.vocab import Vocab


def encode_splits(vocab: Vocab, directory: str | os.PathLike[str],
                  destinations: Mapping[str, str | os.PathLike[str]]) -> dict[str, int]:
    """Write the ids of each split's tokens to `destinations[split]`; return how many per split.

    One lookup table, from dictionary index to vocabulary id, serves every split and row group.
    """
    table = vocab.lookup_table(read_dictionary(directory))
    return {split: _encode_split(table, directory, split, dst)
            for split, dst in destinations.items()}


def _encode_split(table: np.ndarray, directory: str | os.PathLike[str], split: str,
                  dst: str | os.PathLike[str]) -> int:
    """The header is the one `np.save` writes; the ids follow, a row group at a time, with plain
    sequential writes (a memory map would count every page of a multi-GB output as the
    process's own memory)."""
    n = num_tokens(directory, split)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.int32)),
              "fortran_order": False, "shape": (n,)}
    with atomic_path(dst) as tmp, tmp.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for indices in iter_indices(directory, split):
            f.write(remap(indices, table).astype(np.int32, copy=False).data)
    return n
