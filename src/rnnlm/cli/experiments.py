"""Named configurations run as DVC experiments: `rnnlm exp run NAME`.

A configuration is a file `configs/NAME.yaml`: the params.yaml values it changes, as dotted keys
(`model.hidden: 512`). Running it is `dvc exp run -n NAME -S key=value ...` (DVC's own way to
change parameters, so the experiment shows in `dvc exp show`, its run in MLflow under the
experiment's name), printed before it runs. It changes the committed params.yaml: a workspace
whose params.yaml differs (as `dvc exp run` leaves it) is refused unless `--on-workspace`.
`--queue` queues it instead (`dvc queue start` runs the queue), so a benchmark grid is a few
queued configurations.

    rnnlm exp list
    rnnlm exp show NAME          # the dvc command, not run
    rnnlm exp run NAME [STAGE ...] [--queue] [--on-workspace] [-S k=v ...]
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from rnnlm.errors import RnnlmError, exit_with_message

CONFIGS = Path("configs")


def override_value(value: Any) -> str:
    """`value` in the override grammar of `dvc exp run -S` (Hydra's): strings quoted, so that
    `none` or `1e-3` stay what the file says."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if "\n" in value:
            raise RnnlmError(f"{value!r}: a line break cannot be passed to `dvc exp run -S`")
        # Hydra's quoted strings: a backslash is escaped only before a quote or at the end,
        # and ${ would be an interpolation.
        quoted = re.sub(r"(\\*)(')", lambda m: m[1] * 2 + "\\'", value)
        quoted = re.sub(r"(\\+)$", lambda m: m[1] * 2, quoted).replace("${", "\\${")
        return f"'{quoted}'"
    if isinstance(value, list):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    raise RnnlmError(f"{value!r}: a configuration value is a number, a string, a boolean, "
                     "null or a list of them")


def load(name: str, directory: Path = CONFIGS) -> dict[str, Any]:
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(names(directory)) or "none"
        raise RnnlmError(f"no configuration {name!r} ({path} is missing); known: {known}")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise RnnlmError(f"{path}: a configuration maps params.yaml keys (model.hidden) to "
                         "values")
    return values


def names(directory: Path = CONFIGS) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def command(name: str, queue: bool = False, extra: list[str] | None = None,
            targets: list[str] | None = None, directory: Path = CONFIGS) -> list[str]:
    """The `dvc exp run` that runs configuration `name` (values from `extra` win), up to the
    stages `targets` (default: all)."""
    sets = [f"{key}={override_value(value)}" for key, value in load(name, directory).items()]
    args = ["dvc", "exp", "run", "-n", name, *(["--queue"] if queue else [])]
    for item in [*sets, *(extra or [])]:
        args += ["-S", item]
    return args + list(targets or [])


def shell_words(cmd: list[str]) -> str:
    """The command as a shell line; a value holding single quotes (and nothing a shell expands
    inside double ones) goes in double quotes, which reads better than shlex's nesting."""
    def word(arg: str) -> str:
        if "'" in arg and not any(c in arg for c in "\"$`\\!"):
            return f'"{arg}"'
        return shlex.quote(arg)
    return " ".join(word(arg) for arg in cmd)


def check_committed_params() -> None:
    """A configuration changes the committed params.yaml: refuse a workspace whose params.yaml
    differs from it (a previous experiment's values, applied by `dvc exp run`, would carry over
    into this one unnoticed)."""
    diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "params.yaml"],
                          capture_output=True)
    if diff.returncode == 1:
        raise RnnlmError("params.yaml differs from the last commit (`dvc exp run` leaves an "
                         "experiment's values in the workspace), and those values would carry "
                         "over into this configuration: `git checkout params.yaml` first, or "
                         "pass --on-workspace to apply the configuration on top of them")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the configurations in configs/")
    show = sub.add_parser("show", help="print the dvc command of a configuration")
    show.add_argument("name")
    run = sub.add_parser("run", help="run (or --queue) a configuration as a DVC experiment")
    run.add_argument("name")
    run.add_argument("--queue", action="store_true", help="queue it: `dvc queue start` runs it")
    run.add_argument("targets", nargs="*", help="stages to run up to (default: all)")
    run.add_argument("--on-workspace", action="store_true",
                     help="apply the configuration to params.yaml as it is in the workspace, "
                          "not as committed")
    run.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE",
                     help="a further change, as for dvc exp run")
    args = parser.parse_args(argv)
    with exit_with_message():
        if args.action == "list":
            for name in names():
                print(name)
            return
        cmd = command(args.name, getattr(args, "queue", False), getattr(args, "set_param", []),
                      getattr(args, "targets", []))
        if args.action == "run" and not args.on_workspace:
            check_committed_params()
        print(shell_words(cmd), flush=True)
        if args.action == "run":
            sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
