"""The project's runs as one table: `python -m rnnlm.runs [--csv FILE]`.

Reads the experiment through `mlflow.search_runs` (a pandas DataFrame), keeps the columns that
compare models across kinds, and sorts by validation perplexity.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from rnnlm import tracking
from rnnlm.errors import RnnlmError

COLUMNS = {
    "tags.mlflow.runName": "run",
    "tags.model_kind": "kind",
    "tags.dvc_exp_name": "dvc_exp",
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
    "metrics.val_ppl": "val_ppl",
    "metrics.best_val_ppl": "best_val_ppl",
    "metrics.test_ppl": "test_ppl",
    "status": "status",
}


def runs_table() -> pd.DataFrame:
    import mlflow

    uri, experiment_id = tracking.connect()
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_ids=[experiment_id])
    if runs.empty:
        names = [n for n in COLUMNS.values() if n != "best_val_ppl"]
        return pd.DataFrame(columns=[*names, "wall_s", "run_id"])
    table = pd.DataFrame({name: runs.get(column, pd.NA) for column, name in COLUMNS.items()},
                         index=runs.index)
    # Trained models: the best epoch's value (their checkpoint); n-grams have one value.
    table["val_ppl"] = table["best_val_ppl"].fillna(table["val_ppl"])
    table = table.drop(columns="best_val_ppl")
    table["wall_s"] = (runs["end_time"] - runs["start_time"]).dt.total_seconds().round(1)
    table["run_id"] = runs["run_id"]
    return table.sort_values("val_ppl", na_position="last").reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    try:
        table = runs_table()
    except RnnlmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    with pd.option_context("display.max_columns", None, "display.width", 200):
        print(table.drop(columns="run_id").to_string(index=False, na_rep=""))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
