"""`rnnlm`: the project's one command. Each subcommand is a module of this package
(`rnnlm generate --help`, ...); `python -m rnnlm.cli` is the same command."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

# name: (module, its function taking argv, one line of help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "generate": ("rnnlm.cli.generate", "main", "continue a prefix with a fitted model"),
    "runs": ("rnnlm.cli.runs", "main", "the MLflow runs, one table per corpus and level"),
    "exp": ("rnnlm.cli.experiments", "main",
            "named configurations as DVC experiments (exp run NAME)"),
    "sync": ("rnnlm.cli.sync", "main",
             "bring the MLflow store in line with the workspace's models"),
    "serve": ("rnnlm.serving.serve", "main", "serve a registered model's champion over HTTP"),
    "ui": ("rnnlm.cli.ui", "main", "the MLflow UI on the project's store"),
    "plots": ("rnnlm.cli.plots", "main", "every DVC plot drawn into one offline page"),
    "team": ("rnnlm.cli.team", "main",
             "a team's stack here: PostgreSQL, S3, MLflow with basic-auth (up, down, env)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_line}" for name, (_, _, help_line) in COMMANDS.items()]
    return ("usage: rnnlm COMMAND [ARGS...]   (rnnlm COMMAND --help for its options)\n\n"
            "commands:\n" + "\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"rnnlm: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module, function, _ = COMMANDS[name]
    run: Callable[[list[str]], None] = getattr(importlib.import_module(module), function)
    # argparse names the program after sys.argv[0]: its usage lines then read "rnnlm generate".
    sys.argv[0] = f"rnnlm {name}"
    try:
        run(rest)
    except BrokenPipeError:
        # The reader went away (`rnnlm runs | head`): no traceback for output nobody reads.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
