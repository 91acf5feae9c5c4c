"""The served model over HTTP: MLflow's own scoring server (its FastAPI app, run by uvicorn, as
`mlflow models serve --env-manager local` runs it), with what that command cannot do:

- a request's work stops when the request is over. MLflow runs `predict` in a thread and answers
  504 when `MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT` passes, but a thread cannot be cancelled and
  `predict` is told nothing, so the work went on for minutes. Here each request carries an event,
  set when its response is sent (a 504 included) or when the client goes away; the prediction
  checks it before each token or chunk (`serving/budget.py`).
- SIGTERM stops the server in seconds: it tells every prediction to stop, then uvicorn closes.
- a body over the size the limits allow is refused (413) before it is parsed, and a JSON body
  nested too deep for Python's parser is a 400 instead of MLflow's 500.

Under plain `mlflow models serve` the limits and the timeout still hold (they live in the model);
the stop on disconnect and the quick SIGTERM do not.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from types import FrameType
from typing import Any

from rnnlm.serving.budget import REQUEST_OVER, STOPPING, TIMEOUT_VAR, Limits, request_timeout_s

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

GRACE_S = 3  # after SIGTERM, how long uvicorn waits for open requests before closing them
_DRAIN = 64 * 2**20  # bytes of an oversized body read (and dropped) before answering 413
_DEEP = 1_000  # brackets in a body before it is worth checking its depth


def max_body_bytes(limits: Limits) -> int:
    """The largest body a request within the limits needs: every character escaped as two
    \\uXXXX (12 bytes: a character beyond the BMP, as Python's json writes it), a little per row,
    and room for the params."""
    return 12 * limits.characters + 1_024 * limits.rows + 65_536


class RequestGuard:
    """ASGI middleware in front of MLflow's app, for `/invocations` only."""

    def __init__(self, app: App, limits: Limits) -> None:
        self.app, self.max_bytes = app, max_body_bytes(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/invocations":
            await self.app(scope, receive, send)
            return
        try:  # MLflow's timeout only starts with its app: a client trickling a body meets this one
            body = await asyncio.wait_for(self._body(receive), request_timeout_s())
        except TimeoutError:
            await _answer(send, 408, "the request body did not arrive within the server's "
                                     f"timeout ({TIMEOUT_VAR})", "REQUEST_TIMEOUT")
            return
        if body is None:  # the client went away
            return
        if isinstance(body, str):
            await _answer(send, 413, body, "REQUEST_TOO_LARGE")
            return
        if _too_deep(body):
            await _answer(send, 400, "the JSON body is nested too deep to parse; a request is a "
                                     "table of rows (dataframe_records or dataframe_split)")
            return
        over = threading.Event()
        token = REQUEST_OVER.set(over)  # copied into the prediction's thread with the context
        watcher = asyncio.ensure_future(_watch_disconnect(receive, over))
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            over.set()
            watcher.cancel()
            REQUEST_OVER.reset(token)

    async def _body(self, receive: Receive) -> bytes | str | None:
        """The whole body, or why it is refused (a string), or None if the client left. An
        oversized body is read to its end (up to _DRAIN more bytes) without being kept, so that
        the client, still sending, gets the answer rather than a reset connection."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_bytes:
                chunks.append(chunk)
            elif chunks:
                chunks = []  # over: from here on only counted
            if not message.get("more_body", False) or size > self.max_bytes + _DRAIN:
                break
        if size > self.max_bytes:
            return (f"the request body is over {self.max_bytes:,} bytes, more than a request "
                    "within the server's limits needs; split it, or raise the limits (make "
                    "serve SERVE_ARGS='--max-characters N --max-rows N')")
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read once already, handed to the app as if it came now."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _watch_disconnect(receive: Receive, over: threading.Event) -> None:
    """Once the body is read, uvicorn's next message is the client going away (or the response
    complete, which it reports the same way; after a 504 that is what stops the work)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    over.set()


def _too_deep(body: bytes) -> bool:
    if body.count(b"[") + body.count(b"{") < _DEEP:
        return False
    try:
        json.loads(body)
    except RecursionError:
        return True
    except ValueError:
        return False  # MLflow's parser answers bad JSON with its own 400
    return False


async def _answer(send: Send, status: int, message: str,
                  code: str = "INVALID_PARAMETER_VALUE") -> None:
    content = json.dumps({"error_code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(content)).encode())]})
    await send({"type": "http.response.body", "body": content})


def run(model_uri: str, host: str, port: int) -> None:
    """Load the model and serve it until SIGTERM or Ctrl-C."""
    import uvicorn
    from mlflow.pyfunc import scoring_server

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            STOPPING.set()  # every prediction stops at its next token or chunk
            super().handle_exit(sig, frame)

    limits = Limits.from_environment()
    # rnnlm is imported already, so the model runs this package (whose STOPPING it checks),
    # not the copy of it logged with the model, which MLflow puts on sys.path: Python finds
    # the submodules of an imported package where that package is.
    app = RequestGuard(scoring_server.init(scoring_server.load_model_with_mlflow_config(
        model_uri)), limits)
    config = uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=GRACE_S)
    Server(config).run()
