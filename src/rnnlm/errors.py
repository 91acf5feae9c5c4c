"""The one exception type the pipeline turns into a clean error message."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


class RnnlmError(Exception):
    """A problem the user can fix: the message says what is wrong and how to fix it."""


@contextlib.contextmanager
def exit_with_message() -> Iterator[None]:
    """For the command-line tools: a RnnlmError, or a tracking server's refusal (401, 403), ends
    the program with its message on stderr and status 2, without a traceback."""
    try:
        yield
    except RnnlmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:
        from rnnlm.tracking.connection import refusal  # a tracking server's 401 or 403

        refused = refusal(exc)
        if refused is None:
            raise
        print(f"error: {refused}", file=sys.stderr)
        sys.exit(2)
