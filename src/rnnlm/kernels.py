"""Vectorised kernels over integer arrays: narrow types, counts, table lookups.

They work in small chunks where numpy would otherwise widen a whole array to int64 at once:
fresh memory is what costs most on a large corpus, so they touch as little of it as they can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported where used: the n-gram model's users need no Arrow
    import pyarrow as pa

_CHUNK = 1 << 16  # elements: temporaries stay in cache and in memory the allocator reuses


def index_dtype(n_values: int) -> type[np.signedinteger]:
    """The narrowest signed type indexing `n_values` things (int8 for characters)."""
    for dtype in (np.int8, np.int16):
        if n_values <= np.iinfo(dtype).max + 1:
            return dtype
    return np.int32


def count_values(values: np.ndarray, minlength: int = 0) -> np.ndarray:
    """`np.bincount` of non-negative integers, chunk by chunk (it widens its input to int64)."""
    counts = np.zeros(max(minlength, int(values.max()) + 1 if len(values) else 0), dtype=np.int64)
    for start in range(0, len(values), _CHUNK):
        chunk = np.bincount(values[start : start + _CHUNK])
        counts[: len(chunk)] += chunk
    return counts


def add_counts(totals: np.ndarray, values: np.ndarray) -> None:
    """`totals[v] += ` how often v occurs in `values`, for every v, in time that follows
    `len(values)` even when `totals` is far longer (a word vocabulary of millions counted a
    row group at a time: a bincount would cost the whole vocabulary per row group)."""
    if len(totals) <= len(values):  # into totals of any integer type the caller sized
        np.add(totals, count_values(values, minlength=len(totals)), out=totals, casting="unsafe")
    else:
        distinct, counts = np.unique(values, return_counts=True)
        totals[distinct] += counts.astype(totals.dtype)


def remap(indices: np.ndarray | pa.Array, table: np.ndarray) -> np.ndarray:
    """`table[indices]`: each index replaced by its entry in `table`, as `table.dtype`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(indices, pa.Array):
        indices = indices.to_numpy(zero_copy_only=False)
    if indices.dtype.itemsize == 1 and table.dtype.itemsize == 1:
        # Byte to byte: bytes.translate with a 256-entry table is the fastest lookup there is.
        entries = np.zeros(256, dtype=np.uint8)
        entries[: len(table)] = table.view(np.uint8)
        translation = entries.tobytes()
        out = np.empty(len(indices), dtype=table.dtype)
        for start in range(0, len(indices), _CHUNK):
            chunk = indices[start : start + _CHUNK].tobytes().translate(translation)
            out[start : start + len(chunk)] = np.frombuffer(chunk, dtype=table.dtype)
        return out
    # Arrow's take reads narrow indices as they are; numpy's fancy indexing widens them.
    return pc.take(pa.array(table), pa.array(indices)).to_numpy(zero_copy_only=False)

