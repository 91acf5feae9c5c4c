"""What one request to the served model may cost, and when its work must stop.

All of it applies where the model is served (MLflow's scoring server marks its process, and so do
`mlflow models predict` and `mlflow.models.predict`, which simulate it); the same model loaded in
a notebook or a batch job with `mlflow.pyfunc.load_model` has no limits and no deadline.

The limits are checked before any work starts, summed over the request's rows; each is an
environment variable of the serving process (`make serve` passes its flags as these). A request
over one is a 400 naming the limit and the variable that raises it.

Work already started stops at the next token or chunk once the request is over: its deadline
passed (MLflow's `MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT`, after which the client has its 504), the
client went away or the request ended otherwise (where the project's server runs it, see
`serving/server.py`), or the server is stopping (SIGTERM).
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rnnlm.errors import RnnlmError

ROWS_VAR = "RNNLM_SERVE_MAX_ROWS"
NEW_TOKENS_VAR = "RNNLM_SERVE_MAX_NEW_TOKENS"
CHARACTERS_VAR = "RNNLM_SERVE_MAX_CHARACTERS"
TIMEOUT_VAR = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"  # MLflow's, in seconds (default 60)
SERVING_VAR = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"  # "true" once MLflow's scoring app is built

# Measured on a 2-core CPU with The Time Machine's GRU (hidden 256): about 3,800 new tokens and
# 20,000 scored characters a second, so a request at a limit takes 2.5-3 s of one core.
LONG = 2**63 - 1  # no limit
DEFAULT_ROWS = 100
DEFAULT_NEW_TOKENS = 10_000
DEFAULT_CHARACTERS = 50_000
DEFAULT_TIMEOUT_S = 60.0

# Set by the server's SIGTERM handler: every prediction stops at its next step.
STOPPING = threading.Event()
# The request's own "stop now", set by the server's middleware when the request is over.
REQUEST_OVER: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "rnnlm_request_over", default=None)


class RequestStopped(RnnlmError):
    """The request's work was stopped before it finished (deadline, client gone, shutdown)."""


@dataclass(frozen=True)
class Limits:
    rows: int = DEFAULT_ROWS
    new_tokens: int = DEFAULT_NEW_TOKENS
    characters: int = DEFAULT_CHARACTERS

    @classmethod
    def none(cls) -> Limits:
        return cls(rows=LONG, new_tokens=LONG, characters=LONG)

    @classmethod
    def from_environment(cls) -> Limits:
        request_timeout_s()  # checked with the limits: one line, before the model loads
        return cls(rows=_positive(ROWS_VAR, DEFAULT_ROWS),
                   new_tokens=_positive(NEW_TOKENS_VAR, DEFAULT_NEW_TOKENS),
                   characters=_positive(CHARACTERS_VAR, DEFAULT_CHARACTERS))

    def check_rows(self, rows: int) -> None:
        if rows > self.rows:
            raise RnnlmError(f"this request has {rows:,} rows; the server takes at most "
                             f"{self.rows:,} per request (set {ROWS_VAR}, or `make serve "
                             "SERVE_ARGS=--max-rows N`, to raise it), or split the request")

    def check_new_tokens(self, rows: int, tokens: int) -> None:
        asked = rows * tokens
        if asked > self.new_tokens:
            raise RnnlmError(f"this request asks for {asked:,} new tokens ({rows:,} rows x "
                             f"{tokens:,}); the server generates at most {self.new_tokens:,} "
                             f"per request, summed over rows (set {NEW_TOKENS_VAR}, or `make "
                             "serve SERVE_ARGS=--max-new-tokens N`, to raise it)")

    def check_characters(self, characters: int) -> None:
        if characters > self.characters:
            raise RnnlmError(f"this request has {characters:,} characters to score; the server "
                             f"scores at most {self.characters:,} per request, summed over rows "
                             f"(set {CHARACTERS_VAR}, or `make serve SERVE_ARGS=--max-characters "
                             "N`, to raise it), or split the text")


def _positive(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise RnnlmError(f"{name} must be a whole number >= 1, got {value!r}")
    return number


def serving() -> bool:
    """Whether this process is MLflow's scoring server (it sets this variable when it starts)."""
    return os.environ.get(SERVING_VAR) == "true"


def request_timeout_s() -> float:
    """MLflow's request timeout, checked as MLflow reads it (a whole number of seconds >= 1)."""
    return float(_positive(TIMEOUT_VAR, int(DEFAULT_TIMEOUT_S)))


def interrupter(timeout_s: float | None = None) -> Callable[[], None]:
    """The check a prediction calls before each token or chunk: it raises `RequestStopped`
    once the request is over. Its deadline counts from now (the work's start)."""
    deadline = time.monotonic() + (request_timeout_s() if timeout_s is None else timeout_s)
    over = REQUEST_OVER.get()

    def interrupt() -> None:
        if STOPPING.is_set():
            raise RequestStopped("the server is stopping: send the request again once it is "
                                 "back")
        if over is not None and over.is_set():
            raise RequestStopped("the request is over (the client went away or it timed out)")
        if time.monotonic() > deadline:
            raise RequestStopped(f"the request ran past the server's timeout ({TIMEOUT_VAR}); "
                                 "ask for fewer tokens or characters")

    return interrupt
