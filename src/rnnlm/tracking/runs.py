"""The project's runs, one table per text they were scored on: `rnnlm runs [--csv FILE]`.

Reads the experiment through `mlflow.search_runs` (a pandas DataFrame) and keeps the columns that
compare models across kinds. Figures compare only on the same text at the same tokenization level
(a word-level model's bits per character are flattered by its `<unk>`, and other data is another
task), so the runs are grouped by corpus, level and data checksum, each group ranked by val bits
per character, as the registry ranks its versions; a dash marks what a kind of model does not
have (an n-gram's hidden size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from rnnlm.tracking import connection

if TYPE_CHECKING:
    from mlflow.entities import Run

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
CSV_ONLY = {"tags.dvc_exp_name": "dvc_exp", "tags.data_checksum": "data_checksum"}
# What the printed tables leave to the run's name ("gru-256", "ngram-kneser_ney-5") or their
# heading, so that they fit 160 columns; the CSV keeps every column.
NAMED_BY_RUN = ["kind", "method", "order", "hidden"]
SHOWN_AS = {"best_val_ppl": "val_ppl"}
GROUP = ["corpus", "level", "data_checksum"]  # what makes figures comparable


def runs_table() -> pd.DataFrame:
    """Every run of the project's experiment with its corpus, grouped (GROUP) and, within each
    group, best val bits per character first (then best validation perplexity, for runs not
    evaluated yet). `best_val_ppl` is the val perplexity of the model each run kept (a network's
    best checkpoint), the one its `test_ppl` scores."""
    import mlflow
    from mlflow import MlflowClient

    uri, experiment_id = connection.connect()
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_ids=[experiment_id])
    columns = {**COLUMNS, **CSV_ONLY}
    if runs.empty:
        return pd.DataFrame(columns=["corpus", *columns.values(), "wall_s", "run_id"])
    table = pd.DataFrame({name: runs.get(column, pd.NA) for column, name in columns.items()},
                         index=runs.index)
    table["wall_s"] = (runs["end_time"] - runs["start_time"]).dt.total_seconds().round(1)
    table["run_id"] = runs["run_id"]
    corpora = {run.info.run_id: _corpus(run) for run in
               MlflowClient(uri).search_runs([experiment_id], max_results=len(runs) + 1000)}
    table.insert(0, "corpus", table["run_id"].map(corpora).fillna("-"))
    for column in ("level", "data_checksum"):
        table[column] = table[column].fillna("-")
    return table.sort_values([*GROUP, "val_bpc", "best_val_ppl"], na_position="last"
                             ).reset_index(drop=True)


def _corpus(run: Run) -> str:
    """The corpus of the run's training data: its dataset's name without the level."""
    inputs = run.inputs.dataset_inputs if run.inputs else []
    return inputs[0].dataset.name.rsplit(", ", 1)[0] if inputs else "-"


def tables(table: pd.DataFrame) -> str:
    """The runs as printed: one table per group (GROUP), under a heading naming it."""
    def digits(places: int) -> Callable[[object], str]:
        return lambda v: "-" if pd.isna(v) else f"{v:.{places}f}"

    figures = {name: digits(4) for name in ("val_ppl", "test_ppl", "val_bpc", "test_bpc")}
    printed = []
    groups = list(table.groupby(GROUP, sort=False)) if not table.empty else []
    for (corpus, level, data), rows in groups:
        shown = rows.drop(columns=["run_id", *CSV_ONLY.values(), *NAMED_BY_RUN, "corpus",
                                   "level"]).rename(columns=SHOWN_AS)
        printed.append(f"{corpus}, {level} level, data {str(data)[:12]}: {len(rows)} run(s), "
                       "best val bits per character first\n" + shown.to_string(
                           index=False, na_rep="-", formatters={**figures, "wall_s": digits(1)}))
    return "\n\n".join(printed) if printed else "no runs yet: `make repro` records them"
