"""A training's checkpoints: where they lie (`best.ckpt`, `last.ckpt`), how they are read (weights
only) and written (whole or not at all, even on a full disk or a killed process, with no absolute
path inside), and the previous training's model kept until the new training has succeeded (or, if
it fails, has saved a checkpoint a resume can continue)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from rnnlm.errors import RnnlmError
from rnnlm.io import atomic_path

BEST = "best"
LAST = "last"


def checkpoint_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.ckpt"


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


class PortableCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, whose state (saved in every checkpoint) names its files
    relative to the working directory rather than absolutely: the same training in another clone
    writes the same bytes, so its `dvc.lock` entry does not depend on where the clone lies."""

    _PATHS = ("dirpath", "best_model_path", "kth_best_model_path", "last_model_path")

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        for key in self._PATHS:
            if state.get(key):
                state[key] = os.path.relpath(state[key])
        state["best_k_models"] = {os.path.relpath(path): score
                                  for path, score in state["best_k_models"].items()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        for key in self._PATHS:
            if state.get(key):
                state[key] = os.path.abspath(state[key])
        state["best_k_models"] = {os.path.abspath(path): score
                                  for path, score in state.get("best_k_models", {}).items()}
        super().load_state_dict(state)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint, read with `weights_only=True` (no arbitrary pickles); a missing
    or damaged file (a truncated save, another format) is a RnnlmError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RnnlmError(f"no checkpoint at {path}: run `dvc repro train` first") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise RnnlmError(f"{path} is not a readable checkpoint (truncated or damaged: {exc}). "
                         "Restore it (`dvc checkout models/rnn`) or train again with "
                         "train.resume: false") from None


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
    """The model directory of the last training, kept aside while a new training runs.

    `set_aside()` renames `directory` to a hidden sibling (or, for a resumed training, which
    continues in `directory`, copies it there). The training then ends one of three ways:

    - `keep_new()`: it succeeded (its outputs are written): the sibling is deleted;
    - `restore()`: it failed (an error, a signal, a full disk): without a checkpoint of its own
      (`marker`, the last file an epoch writes) the previous model is put back, so the outputs
      DVC recorded are whole again; with one, its checkpoints stay for `train.resume: true` and
      the sibling is deleted;
    - `reject()`: it was refused (it diverged): its directory is deleted and the previous model
      put back, checkpoints or not, so that `dvc status` sees models/rnn unchanged.

    A process killed in between leaves the sibling, which `recover()` at the next start puts back
    (no checkpoint yet) or deletes. `replacing()` ends it one of the three ways whatever happens
    in its block, so no failure, even one before `set_aside()`, leaves the model aside.
    """

    def __init__(self, directory: Path, marker: Path) -> None:
        self.directory = directory
        self.aside = directory.with_name(f".{directory.name}.previous")
        self.marker = marker  # a file in `directory` whose presence means "trained"
        self._found: bool | None = None  # set_aside: was there a previous model at all?

    def _trained(self, directory: Path) -> bool:
        return (directory / self.marker.relative_to(self.directory)).is_file()

    def recover(self) -> None:
        if not self.aside.exists():
            return
        if self._trained(self.directory):
            shutil.rmtree(self.aside)  # the newer training got as far as a checkpoint
        else:
            self._put_back()

    def set_aside(self, copy: bool = False) -> None:
        """(After `recover()`, so no earlier sibling is in the way.) `copy`: leave `directory`
        in place (a resumed training continues its checkpoints) and keep a copy aside."""
        self._found = self.directory.exists()
        if not self._found:
            return
        if copy:
            try:
                shutil.copytree(self.directory, self.aside, symlinks=True)
            except BaseException:
                shutil.rmtree(self.aside, ignore_errors=True)  # no half copy left to recover
                raise
        else:
            os.replace(self.directory, self.aside)
        _fsync_dir(self.directory.parent)

    @contextlib.contextmanager
    def replacing(self, rejected: type[BaseException]) -> Iterator[None]:
        """A block that calls `set_aside()` and trains: `keep_new()` if it succeeds, `reject()`
        if it raises `rejected`, `restore()` if anything else fails (before `set_aside()` too,
        where they do nothing)."""
        try:
            yield
        except rejected:
            self.reject()
            raise
        except BaseException:
            self.restore()
            raise
        self.keep_new()

    def keep_new(self) -> None:
        shutil.rmtree(self.aside, ignore_errors=True)

    def restore(self) -> None:
        if not self.aside.exists():
            return
        if self._trained(self.directory):
            self.keep_new()  # resumable: `train.resume: true` continues these checkpoints
        else:
            self._put_back()

    def reject(self) -> None:
        if self.aside.exists():
            self._put_back()
        elif self._found is False:
            # There was no previous model: none is what the training found, none it leaves.
            shutil.rmtree(self.directory, ignore_errors=True)

    def _put_back(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        os.replace(self.aside, self.directory)
        _fsync_dir(self.directory.parent)
