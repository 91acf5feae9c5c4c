"""`rnnlm runs` prints tables that fit 160 columns, whatever the documented configurations name."""

from __future__ import annotations

import pandas as pd

from rnnlm.tracking.runs import COLUMNS, CSV_ONLY, tables


def row(run: str, **values: object) -> dict[str, object]:
    blank: dict[str, object] = {name: pd.NA for name in (*COLUMNS.values(), *CSV_ONLY.values())}
    return {**blank, "corpus": "tinyshakespeare.txt", "level": "char", "data_checksum": "ab" * 32,
            "run": run, "status": "FINISHED", "wall_s": 1234.5, "run_id": "0" * 32, **values}


def test_the_widest_documented_runs_fit_160_columns() -> None:
    figures = {"best_val_ppl": 1234.5678, "test_ppl": 1234.5678, "val_bpc": 2.1234,
               "test_bpc": 2.1234}
    table = pd.DataFrame([
        row("ngram-kneser_ney-5 (tinyshakespeare-char-30min)", kind="ngram",
            method="kneser_ney", order="5", **figures),
        row("lstm-1024 (tinyshakespeare-char-30min)", kind="lstm", hidden="1024",
            layers="2", embed="128", dropout="0.25", optimizer="adamw", lr="0.0015",
            epochs="100", **figures),
        row("gru-256 (exp-1a2b3)", kind="gru", status="RUNNING"),
    ])
    printed = tables(table)
    assert max(map(len, printed.splitlines())) <= 160, printed
    header = printed.splitlines()[1].split()
    assert header[0] == "run" and "val_ppl" in header and "kind" not in header
    assert "tinyshakespeare.txt, char level, data abababababab: 3 run(s)" in printed


def test_no_runs_says_how_to_record_them() -> None:
    assert "make repro" in tables(pd.DataFrame())
