"""Numeric series for the autoregressive models: the book's noisy sine, or a column of a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rnnlm.errors import RnnlmError

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}


def noisy_sine(length: int, frequency: float, noise: float, seed: int) -> np.ndarray:
    """x_t = sin(frequency * t) + e_t, e_t ~ N(0, noise^2), t = 1..length (the book's series)."""
    t = np.arange(1, length + 1, dtype=np.float64)
    return np.sin(frequency * t) + np.random.default_rng(seed).normal(0.0, noise, length)


def read_column(path: str | Path, column: str | None = None) -> np.ndarray:
    """One numeric column of a CSV or Parquet file, in row order, as float64."""
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise RnnlmError(f"cannot read a series from {path}: use a .csv or .parquet file")
    if not path.is_file():
        raise RnnlmError(f"series file {path} not found (paths are relative to the repository "
                         "root; in a queued experiment the file must be tracked by git or DVC)")
    frame = reader(path)
    numeric = [str(name) for name in frame.select_dtypes("number").columns]
    if column is None:
        if len(numeric) != 1:
            raise RnnlmError(f"{path} has {len(numeric)} numeric columns ({', '.join(numeric)}): "
                             "name one in sequence.column")
        column = numeric[0]
    if column not in frame.columns:
        raise RnnlmError(f"{path} has no column {column!r}; its columns are "
                         f"{', '.join(map(str, frame.columns))}")
    if column not in numeric:
        raise RnnlmError(f"column {column!r} of {path} is not numeric "
                         f"(dtype {frame[column].dtype}): choose one of {', '.join(numeric)}")
    values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.flatnonzero(~np.isfinite(values))
    if missing.size:
        raise RnnlmError(f"column {column!r} of {path} has {missing.size} missing or infinite "
                         f"values (first at row {missing[0]}): fill or drop them first")
    return values
