"""The one exception type the pipeline turns into a clean error message."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


class RnnlmError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it."""


# Functions that recognise another library's exception as a problem the user can fix (a
# tracking server's 401 or 403: `rnnlm.tracking.connection.refusal`). A module registers its own
# with `explains` when imported, so this module depends on none of them: a program that never
# imported one cannot meet its exceptions.
_EXPLAINERS: list[Callable[[BaseException], RnnlmError | None]] = []


def explains(function: Callable[[BaseException], RnnlmError | None]
             ) -> Callable[[BaseException], RnnlmError | None]:
    """Register `function` (returning a RnnlmError, or None for an exception it does not know)
    with `explained`."""
    _EXPLAINERS.append(function)
    return function


def explained(exc: BaseException) -> RnnlmError | None:
    """`exc` as a RnnlmError if it is one or a registered function recognises it, else None."""
    if isinstance(exc, RnnlmError):
        return exc
    for explain in _EXPLAINERS:
        error = explain(exc)
        if error is not None:
            return error
    return None


@contextlib.contextmanager
def exit_with_message() -> Iterator[None]:
    """For the command-line tools: a RnnlmError, or a tracking server's refusal (401, 403), ends
    the program with its message on stderr and status 2, without a traceback."""
    try:
        yield
    except Exception as exc:
        error = explained(exc)
        if error is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
