"""Serve a registered model's champion over HTTP: `python -m rnnlm.serving.serve` (`make serve`).

Runs `mlflow models serve -m models:/<name>@champion --env-manager local -h 127.0.0.1` on the
project's MLflow store (MLFLOW_TRACKING_URI, or sqlite:///mlflow.db at the project root). The
default name is the registered model of the kind params.yaml trains (`rnnlm-gru`, ...).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import yaml

from rnnlm import tracking
from rnnlm.errors import RnnlmError, exit_with_message
from rnnlm.serving.registry import CHAMPION, registered_name
from rnnlm.store.health import check_sqlite_store


def default_name(params: Path = Path("params.yaml")) -> str:
    try:
        kind = yaml.safe_load(params.read_text(encoding="utf-8"))["model"]["kind"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        raise RnnlmError(f"cannot read model.kind from {params}: give the registered model "
                         "with --name (e.g. --name rnnlm-gru)") from None
    return registered_name(str(kind))


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
                         "models are already there, `python -m rnnlm.store sync`), which "
                         "registers them; or name another one with --name") from None
    print(f"Serving {name} version {version.version} ({CHAMPION}) from {uri}", flush=True)
    return f"models:/{name}@{CHAMPION}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="registered model (default: rnnlm-<model.kind of "
                                       "params.yaml>; rnnlm-ngram for the n-gram)")
    parser.add_argument("--port", type=int, default=5001, help="default: %(default)s")
    parser.add_argument("--host", default="127.0.0.1", help="default: %(default)s (loopback)")
    args = parser.parse_args(argv)
    with exit_with_message():
        uri = tracking.tracking_uri()
        model = champion_uri(uri, args.name or default_name())
    # The scoring server is uvicorn, started by name: this interpreter's scripts come first.
    bin_dir = str(Path(sys.executable).parent)
    env = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **os.environ,
           "MLFLOW_TRACKING_URI": uri,
           "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    mlflow = shutil.which("mlflow", path=env["PATH"]) or "mlflow"
    os.execve(mlflow, [mlflow, "models", "serve", "-m", model, "--env-manager", "local",
                       "-h", args.host, "-p", str(args.port)], env)


if __name__ == "__main__":
    main()
