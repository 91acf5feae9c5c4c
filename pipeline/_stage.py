"""What every stage's `main` shares: load params, turn user errors into one clean message."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from rnnlm.errors import RnnlmError

from .settings import Params, load_params


def run_stage(name: str, body: Callable[[Params], None]) -> None:
    """Run `body(params)`; a RnnlmError exits with status 2 and its message, no traceback."""
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s")
    try:
        body(load_params())
    except RnnlmError as exc:
        print(f"error in stage {name}: {exc}", file=sys.stderr)
        sys.exit(2)
