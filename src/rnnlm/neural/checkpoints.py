"""Checkpoints that survive a full disk or a killed process: each one written whole or not at all,
and the previous training's model kept until the new training has saved its first checkpoint."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins import TorchCheckpointIO

from rnnlm.io import atomic_path


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's own writer saves into a temporary file in the system's temporary folder and
    then copies it over the checkpoint, so a full disk leaves a truncated checkpoint. This one
    writes beside the checkpoint, fsyncs, and renames it into place; `saved(path)` is called after
    each save."""

    def __init__(self, saved: Callable[[Path], None] | None = None) -> None:
        self.saved = saved

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike[str],
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        target = Path(path)
        with atomic_path(target) as tmp, tmp.open("wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(target.parent)
        if self.saved is not None:
            self.saved(target)


class PreviousModel:
    """The model directory of the last training, moved aside while a new training starts.

    `set_aside()` renames `directory` to a hidden sibling; `saved(path)`, told of each checkpoint
    the new training writes, deletes the sibling once `marker` (the last of the checkpoints an
    epoch writes) is saved; `restore()` (the new training failed before that) puts it back, so
    the outputs DVC recorded are whole again. A process killed in between leaves the sibling,
    which `recover()` at the next start puts back or deletes.
    """

    def __init__(self, directory: Path, marker: Path) -> None:
        self.directory = directory
        self.aside = directory.with_name(f".{directory.name}.previous")
        self.marker = marker  # a file in `directory` whose presence means "trained"

    def _trained(self, directory: Path) -> bool:
        return (directory / self.marker.relative_to(self.directory)).is_file()

    def recover(self) -> None:
        if not self.aside.exists():
            return
        if self._trained(self.directory):
            shutil.rmtree(self.aside)  # the newer training got as far as a checkpoint
        else:
            shutil.rmtree(self.directory, ignore_errors=True)
            os.replace(self.aside, self.directory)

    def set_aside(self) -> None:
        """(After `recover()`, so no earlier sibling is in the way.)"""
        if self.directory.exists():
            os.replace(self.directory, self.aside)

    def saved(self, path: Path) -> None:
        if path.resolve() == self.marker.resolve():
            shutil.rmtree(self.aside, ignore_errors=True)

    def restore(self) -> None:
        if self.aside.exists() and not self._trained(self.directory):
            shutil.rmtree(self.directory, ignore_errors=True)
            os.replace(self.aside, self.directory)
