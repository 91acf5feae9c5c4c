"""Every checksum the project computes, all sha256 unless a manifest names another algorithm.

They tie things together without volatile ids: a run is tagged with its data's and its model's
checksums, a resumed training finds its run by its checkpoint's weights, a download is checked
against its manifest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

_BLOCK = 1 << 20  # bytes read at a time: any file size in bounded memory


def files_checksum(paths: Iterable[Path]) -> str:
    """sha256 over the files' bytes in order: the same data gives the same tag for every model."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_BLOCK), b""):
                digest.update(block)
    return digest.hexdigest()


def directory_checksum(directory: str | os.PathLike[str]) -> str:
    """Checksum of every file of a directory, in name order (an n-gram model's `model_checksum`)."""
    return files_checksum(sorted(Path(directory).iterdir()))


def weights_checksum(state_dict: Mapping[str, Any]) -> str:
    """sha256 of a model's weights (names and values, in order): the tag that ties a checkpoint
    to the MLflow run that wrote it, without writing the run's id into the checkpoint."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def array_checksum(values: np.ndarray) -> str:
    """sha256 of the array's float64 bytes (a numeric series: the runs fitted on it)."""
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()


def file_digest(path: str | os.PathLike[str], algorithm: str) -> str:
    """Hex digest (lower case) of the file at `path` by a hashlib algorithm ("sha1", "sha256")."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()
