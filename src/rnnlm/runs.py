"""The project's runs as one table: `python -m rnnlm.runs [--csv FILE]`.

Reads the experiment through `mlflow.search_runs` (a pandas DataFrame), keeps the columns that
compare models across kinds, and sorts by val bits per character; a dash marks what a kind of model
does not have (an n-gram's hidden size).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from rnnlm import tracking
from rnnlm.errors import exit_with_message

COLUMNS = {
    "tags.mlflow.runName": "run",
    "tags.model_kind": "kind",
    "params.method": "method",
    "params.order": "order",
    "params.hidden": "hidden",
    "params.num_layers": "layers",
    "params.embed": "embed",
    "params.dropout": "dropout",
    "params.optimizer": "optimizer",
    "params.lr": "lr",
    "params.epochs": "epochs",
    "params.tokenize_level": "level",
    "metrics.best_val_ppl": "best_val_ppl",
    "metrics.test_ppl": "test_ppl",
    # Bits per character: comparable across levels (char, word, bpe) of the same text.
    "metrics.val_bpc": "val_bpc",
    "metrics.test_bpc": "test_bpc",
    "status": "status",
}
# The run's name carries the DVC experiment's ("gru-256 (exp-name)"); the column is in the CSV.
CSV_ONLY = {"tags.dvc_exp_name": "dvc_exp"}


def runs_table() -> pd.DataFrame:
    """Every run of the project's experiment, best val bits per character first (then best
    validation perplexity, for runs not evaluated yet). `best_val_ppl`
    is the val perplexity of the model each run kept (a network's best checkpoint), the one its
    `test_ppl` scores."""
    import mlflow

    uri, experiment_id = tracking.connect()
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_ids=[experiment_id])
    columns = {**COLUMNS, **CSV_ONLY}
    if runs.empty:
        return pd.DataFrame(columns=[*columns.values(), "wall_s", "run_id"])
    table = pd.DataFrame({name: runs.get(column, pd.NA) for column, name in columns.items()},
                         index=runs.index)
    table["wall_s"] = (runs["end_time"] - runs["start_time"]).dt.total_seconds().round(1)
    table["run_id"] = runs["run_id"]
    # Bits per character first: perplexities of different levels do not compare.
    return table.sort_values(["val_bpc", "best_val_ppl"], na_position="last"
                             ).reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    with exit_with_message():
        table = runs_table()
    shown = table.drop(columns=["run_id", *CSV_ONLY.values()])
    def digits(places: int) -> Callable[[object], str]:
        return lambda v: "-" if pd.isna(v) else f"{v:.{places}f}"

    print(shown.to_string(index=False, na_rep="-", formatters={
        "best_val_ppl": digits(4), "test_ppl": digits(4), "val_bpc": digits(4),
        "test_bpc": digits(4), "wall_s": digits(1)}))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
