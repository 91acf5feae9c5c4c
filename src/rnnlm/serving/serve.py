"""Serve a registered model's champion over HTTP: `rnnlm serve` (`make serve`).

Serves `models:/<name>@champion` of the project's MLflow store (MLFLOW_TRACKING_URI, or
sqlite:///mlflow.db at the project root) with MLflow's scoring server, as `mlflow models serve
--env-manager local -h 127.0.0.1` would, plus the request guard of `serving/server.py`. The
default name is the registered model of the kind params.yaml trains (`rnnlm-gru`, ...).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rnnlm.errors import RnnlmError, exit_with_message
from rnnlm.serving import budget
from rnnlm.serving.registry import CHAMPION, registered_name
from rnnlm.settings import PARAMS_FILE, load_params
from rnnlm.tracking import connection
from rnnlm.tracking.health import check_sqlite_store


def default_name(params: Path = PARAMS_FILE) -> str:
    """The registered model of the kind params.yaml trains, read through the settings (a file
    the stages would refuse is refused here too, with the same message)."""
    try:
        kind = load_params(params).model.kind
    except RnnlmError as exc:
        raise RnnlmError(f"{exc}\nOr give the registered model with --name (e.g. --name "
                         "rnnlm-gru)") from None
    return registered_name(kind)


def champion_uri(uri: str, name: str) -> str:
    """models:/<name>@champion, once the store is known to hold it."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    check_sqlite_store(uri)
    try:
        version = MlflowClient(uri).get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        raise RnnlmError(f"the MLflow store {uri!r} has no registered model {name!r} with an "
                         f"alias {CHAMPION!r}: run `make repro` (or, when the workspace's "
                         "models are already there, `rnnlm sync`), which "
                         "registers them; or name another one with --name") from None
    print(f"Serving {name} version {version.version} ({CHAMPION}) from {uri}", flush=True)
    return f"models:/{name}@{CHAMPION}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="registered model (default: rnnlm-<model.kind of "
                                       "params.yaml>; rnnlm-ngram for the n-gram)")
    parser.add_argument("--port", type=int, default=5001, help="default: %(default)s")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s (loopback)")
    limits = parser.add_argument_group(
        "limits of one request, summed over its rows (a request over one is refused with a 400 "
        "before any work starts)")
    limits.add_argument("--max-rows", type=int, help=f"rows (texts or prefixes) per request "
                        f"(${budget.ROWS_VAR}; default {budget.DEFAULT_ROWS:,})")
    limits.add_argument("--max-new-tokens", type=int, help=f"tokens to generate "
                        f"(${budget.NEW_TOKENS_VAR}; default {budget.DEFAULT_NEW_TOKENS:,})")
    limits.add_argument("--max-characters", type=int, help=f"characters of the texts to score, "
                        f"or of the prefixes (${budget.CHARACTERS_VAR}; default "
                        f"{budget.DEFAULT_CHARACTERS:,})")
    limits.add_argument("--timeout", type=int, help=f"seconds before a request is answered 504 "
                        f"and its work stopped (${budget.TIMEOUT_VAR}; default "
                        f"{budget.DEFAULT_TIMEOUT_S:.0f})")
    args = parser.parse_args(argv)
    for variable, value in ((budget.ROWS_VAR, args.max_rows),
                            (budget.NEW_TOKENS_VAR, args.max_new_tokens),
                            (budget.CHARACTERS_VAR, args.max_characters),
                            (budget.TIMEOUT_VAR, args.timeout)):
        if value is not None:
            os.environ[variable] = str(value)
    with exit_with_message():
        budget.Limits.from_environment()  # a bad value is one line, before the model loads
        uri = connection.tracking_uri()
        model = champion_uri(uri, args.name or default_name())
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from rnnlm.serving.server import run

    run(model, args.host, args.port)


if __name__ == "__main__":
    main()
