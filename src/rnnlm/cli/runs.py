"""`rnnlm runs [--csv FILE]`: the project's runs, one table per corpus, level and data checksum,
best val bits per character first (see `rnnlm.tracking.runs`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnlm.errors import exit_with_message
from rnnlm.tracking.runs import runs_table, tables


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, help="also write the table, with every column, to "
                        "this CSV file")
    args = parser.parse_args(argv)
    with exit_with_message():
        table = runs_table()
    print(tables(table))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
