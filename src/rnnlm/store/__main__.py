"""`python -m rnnlm.store sync`: bring the MLflow store in line with the workspace's models.

Run it from the repository's root (`make repro` runs it after `dvc repro`). It records the run of
every workspace model the store lacks, adds the evaluate stage's figures and samples, and
registers the models; it retrains nothing, and a second run changes nothing.
"""

from __future__ import annotations

import argparse
import logging

from rnnlm.errors import exit_with_message


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rnnlm.store",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sync", help="bring the store in line with the workspace's models",
                        description=__doc__.split("\n\n")[1])
    parser.parse_args(argv)
    sync_workspace()


def sync_main(argv: list[str] | None = None) -> None:
    """`rnnlm sync`: the same, as a command of its own."""
    argparse.ArgumentParser(description=__doc__.split("\n\n")[1]).parse_args(argv)
    sync_workspace()


def sync_workspace() -> None:
    logging.basicConfig(level=logging.WARNING, format="[sync] %(message)s")
    with exit_with_message():
        from rnnlm.store.sync import report, sync
        from rnnlm.store.workspace import workspace_models

        models = workspace_models()
        print(report(models, sync(models)))


if __name__ == "__main__":
    main()
