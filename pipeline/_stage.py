"""What every stage's `main` shares: load params, turn user errors into one clean message."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable
from types import FrameType

import numpy as np
import pyarrow as pa

from rnnlm.errors import RnnlmError, explained
from rnnlm.layout import ids_path
from rnnlm.settings import Params, load_params


def use_jemalloc() -> None:
    """Arrow's jemalloc pool, unless ARROW_DEFAULT_MEMORY_POOL chooses one or pyarrow lacks it.

    It hands freed memory back to the system sooner than pyarrow's default (mimalloc): on a
    word-level corpus of 6.7 million distinct words, the vocab stage peaked at 1.1 GB instead of
    1.7 GB. The pool changes where buffers live, never their contents.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    with contextlib.suppress(NotImplementedError):  # a pyarrow built without jemalloc
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def return_freed_memory() -> None:
    """Large temporaries (1 MiB and up) straight from the system and back when freed.

    glibc raises its mmap threshold after the first large free (up to 32 MiB), then serves the
    next chunk-sized arrays from its heap and keeps that memory once they are freed: the ngram
    stage at 100 MB of words held 0.27 GiB after counting instead of 0.18, and peaked 10% higher.
    Fixing the threshold turns that off. Not glibc (another libc, another system): nothing.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 1 << 20)


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def load_ids(splits: Iterable[str], mmap: bool = True) -> dict[str, np.ndarray]:
    """The partition stage's id arrays (memory-mapped by default); a missing one names the
    stage that writes it."""
    ids = {}
    for split in splits:
        path = ids_path(split)
        if not path.is_file():
            raise RnnlmError(f"{path} is missing: run `dvc repro partition` (or `dvc repro`)")
        ids[split] = np.load(path, mmap_mode="r" if mmap else None)
    return ids


def dataset_name(params: Params) -> tuple[str, str]:
    """A name for the training ids in MLflow's Dataset column (the corpus file and the token
    level, e.g. "timemachine.txt, char"), and where the corpus came from."""
    source = params.data.urls[0]
    name = source.rstrip("/").rsplit("/", 1)[-1]
    if params.data.documents:
        name += f" + {len(params.data.documents)} more"
    return f"{name}, {params.tokenize.level}", source


class Stopped(BaseException):
    """SIGTERM or SIGINT arrived: unwinds the stage like any failure (its MLflow run is closed
    FAILED, no output is renamed into place), whatever library code is running."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def run_stage(name: str, body: Callable[[Params], None], again: str = "run `dvc repro` again"
              ) -> None:
    """Run `body(params)`; a RnnlmError (or a tracking server's refusal: 401, 403) exits with
    status 2 and its message, no traceback; a stage stopped by SIGTERM or SIGINT exits with
    128 + the signal, as a shell reports it (and not 0, which is what Lightning's own SIGTERM
    handling would end with), saying how to go on (`again`)."""
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s")
    use_jemalloc()
    return_freed_memory()
    # Lightning calls a SIGTERM handler it finds after its own, so these stop a training too;
    # the caller's handlers come back afterwards (a test calling a stage in its own process).
    handlers = {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        body(load_params())
    except RnnlmError as exc:
        print(f"error in stage {name}: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a full disk, a read-only folder, a file another step removed
        where = f"{exc.filename}: " if exc.filename else ""
        fix = ("run `dvc repro`, which makes every stage's inputs"
               if isinstance(exc, FileNotFoundError) else "free space or make it writable")
        print(f"error in stage {name}: {where}{exc.strerror or exc}; {fix}, then run the stage "
              "again (nothing half-written was kept)", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        refused = explained(exc)  # a tracking server's 401 or 403
        if refused is None:
            raise
        print(f"error in stage {name}: {refused}", file=sys.stderr)
        sys.exit(2)
    except Stopped as stop:
        print(f"stage {name} stopped by {signal.Signals(stop.signum).name}: nothing half-written "
              f"was kept; {again}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
