"""The MLflow UI on the project's local store: `rnnlm ui` (what `make ui` runs).

It prints the addresses that open the runs lists directly (MLflow 3's UI otherwise opens an
experiment on its GenAI overview, with empty trace panels), then serves the UI on 127.0.0.1 with
one worker and without the GenAI job runner, which a local store of training runs does not use.
"""

from __future__ import annotations

import argparse
import os
import sys

from rnnlm.errors import exit_with_message
from rnnlm.tracking import connection
from rnnlm.tracking.health import check_sqlite_store


def runs_url(base: str, experiment_id: str) -> str:
    """The address of an experiment's runs list, as a model-training experiment."""
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5000, help="port (default: %(default)s)")
    args = parser.parse_args(argv)
    store = connection.local_store_uri()
    with exit_with_message():
        check_sqlite_store(store)
    base = f"http://{args.host}:{args.port}"
    for part, what in (("", "language models"), ("sequence", "sequence models")):
        experiment_id = connection.ensure_experiment(store, connection.experiment_name(part))
        print(f"{what:>16}: {runs_url(base, experiment_id)}")
    sys.stdout.flush()
    # No GenAI job runner, and no warning about a Starlette module MLflow itself imports.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "PYTHONWARNINGS": "ignore:starlette.middleware.wsgi is deprecated:UserWarning"}
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
               "--host", args.host, "--port", str(args.port), "--workers", "1"]
    os.execve(sys.executable, command, env)


if __name__ == "__main__":
    main()
