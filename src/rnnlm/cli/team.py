"""`rnnlm team`: a team's stack on this machine, on 127.0.0.1 (`make team-up`, `make team-down`).

`up` starts PostgreSQL, an S3 emulator (moto) and an MLflow server with basic-auth under a folder
of its own (default .team/ at the project's root) and prints the `export` lines a client needs;
`env` prints them again (`eval "$(rnnlm team env)"`); `down` stops all of it and deletes its
database and bucket (its logs stay). See docs/teams.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnlm.errors import exit_with_message


def parser() -> argparse.ArgumentParser:
    what = __doc__.split("\n\n")[0].split(": ", 1)[1]
    parser = argparse.ArgumentParser(description=what[0].upper() + what[1:],
                                     epilog=__doc__.split("\n\n")[1])
    parser.add_argument("action", choices=("up", "down", "env"))
    parser.add_argument("--dir", type=Path, default=None,
                        help="the stack's folder (default: .team/ at the project's root)")
    parser.add_argument("--port", type=int, default=None,
                        help="up: the MLflow server's port; the S3 emulator takes the next, "
                        "PostgreSQL the one after (default: 5050; 0: any free ports)")
    parser.add_argument("--admin", action="store_true",
                        help="env: the admin's credentials instead of the team user's")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    with exit_with_message():
        from rnnlm.team import stack

        folder = (args.dir or stack.default_folder()).resolve()
        if args.action == "up":
            running, started = stack.up(folder, stack.DEFAULT_PORT if args.port is None
                                        else args.port)
            print(("" if started else "already running: ") + stack.summary(running),
                  file=sys.stderr)
            print("\n".join(running.exports()))
        elif args.action == "down":
            stopped = stack.down(folder)
            print(f"stopped {', '.join(stopped)}; deleted the stack's data in {folder}"
                  if stopped else f"no team stack in {folder}: nothing to stop",
                  file=sys.stderr)
        else:
            found = stack.Stack.load(folder)
            if found is None or not found.running():
                from rnnlm.errors import RnnlmError

                raise RnnlmError(f"no team stack runs in {folder}. Fix: `make team-up` "
                                 "(or `rnnlm team up`)")
            print("\n".join(found.exports(admin=args.admin)))


if __name__ == "__main__":
    main()
