"""`rnnlm sync`: bring the MLflow store in line with the workspace's models.

Run it from the repository's root (`make repro` runs it after `dvc repro`). It records the run of
every workspace model the store lacks, adds the evaluate stage's figures and samples, and
registers the models; it retrains nothing, and a second run changes nothing.
"""

from __future__ import annotations

import argparse
import logging

from rnnlm.errors import exit_with_message


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[1]).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="[sync] %(message)s")
    with exit_with_message():
        from rnnlm.tracking.sync import report, sync
        from rnnlm.tracking.workspace import workspace_models

        models = workspace_models()
        print(report(models, sync(models)))
