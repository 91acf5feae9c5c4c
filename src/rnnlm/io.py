"""Atomic file writes: every output appears whole under its final name, or not at all."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rnnlm.errors import RnnlmError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the same directory so the final `os.replace` is atomic.
    """
    target = Path(path)
    with _naming(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates files 0600; outputs get the usual permissions the umask allows.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        with _naming(target):
            yield tmp
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _naming(target: Path) -> Iterator[None]:
    """An OSError about one of `target`'s temporary files, or a failed write that names no file
    (a full disk), names `target` instead: the output a user knows and can fix. Any other error
    (a timeout, a refused connection while downloading into the file) passes unchanged."""
    try:
        yield
    except OSError as exc:
        about_temporary = (exc.filename is not None
                           and Path(exc.filename).name.startswith(f".{target.name}."))
        unnamed_write = exc.filename is None and exc.errno in _WRITE_ERRORS
        if not (about_temporary or unnamed_write):
            raise
        raise OSError(exc.errno, exc.strerror, str(target)) from exc


# What writing a file can fail with: no space, over quota, too large, read-only, an I/O error.
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `path`; swap it in for `path` if the block succeeds.

    The old directory is renamed aside and removed only after the new one is in place, so a
    failure anywhere leaves either the old contents or the new ones, never a mixture.
    """
    target = Path(path)
    with _naming(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    old = target.with_name(f".{target.name}.old")
    try:
        yield tmp
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old.exists():
                os.replace(old, target)  # put the previous contents back
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike[str], data: Any, sort_keys: bool = True) -> None:
    """Write `data` as indented JSON, key-sorted by default (stable diffs for `dvc metrics
    diff`). Strict JSON only: a NaN or an infinity anywhere in `data` (which Python would write as
    NaN or Infinity, and which `dvc metrics`, browsers and most JSON readers refuse) is a
    RnnlmError naming the file and the value's key path, and nothing is written."""
    try:
        # Serialised before any file is opened: a refused value leaves no temporary file.
        text = json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=False)
    except ValueError:
        where = _non_finite(data)
        if where is None:
            raise  # not about NaN or infinity (a circular reference, say)
        key_path, value = where
        raise RnnlmError(f"refusing to write {os.fspath(path)}: {key_path} is {value!r}, "
                         "which strict JSON cannot hold") from None
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def _non_finite(data: Any, key_path: str = "") -> tuple[str, float] | None:
    """The key path (such as `rnn.history[2].val_ppl`) and value of the first NaN or infinity in
    `data`, or None."""
    if isinstance(data, float):
        return None if math.isfinite(data) else (key_path or "the whole value", float(data))
    if isinstance(data, dict):
        children: Iterable[tuple[str, Any]] = (
            (f"{key_path}.{key}" if key_path else str(key), value) for key, value in data.items())
    elif isinstance(data, list | tuple):
        children = ((f"{key_path}[{i}]", value) for i, value in enumerate(data))
    else:
        return None
    for child_path, value in children:
        found = _non_finite(value, child_path)
        if found is not None:
            return found
    return None


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
