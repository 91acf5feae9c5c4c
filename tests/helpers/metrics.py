"""DVC's metrics as the stages write them: reports/metrics/<model>.json, read back by model."""

from __future__ import annotations

import json
from pathlib import Path

from rnnlm import layout


def model_metrics(root: Path = Path()) -> dict[str, dict[str, float]]:
    """{"rnn": {"val_ppl": ..., ...}, "ngram": {...}} from the files under `root`."""
    return {path.stem: json.loads(path.read_text())
            for path in sorted((root / layout.METRICS_DIR).glob("*.json"))}
