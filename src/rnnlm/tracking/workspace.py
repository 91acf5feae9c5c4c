"""The workspace's fitted models as the MLflow store should record them, read from the files DVC
tracks, never from the store.

The fitting stages write what their MLflow run holds into their reports (`run` in
reports/train.json and reports/ngram.json: run name, parameters, checksums, metrics), the train
stage its per-epoch history (reports/train_metrics.csv), and the evaluate stage what it adds to
each run (reports/evaluation.json: test figures, bits per character, samples, keyed by the
model's checksum). So the store can be rebuilt from a clone, after a pull, or after a failure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from rnnlm.errors import RnnlmError
from rnnlm.layout import (
    CHECKPOINTS,
    EVALUATION,
    NGRAM_DIR,
    NGRAM_REPORT,
    RNN_DIR,
    TRAIN_CURVES,
    TRAIN_METRICS,
    TRAIN_REPORT,
)

RUN_KEY = "run"  # the key of a report's run record


@dataclass(frozen=True)
class RunRecord:
    """What a fitting stage recorded in MLflow, as its report keeps it."""

    name: str  # the run's name before any DVC experiment suffix, e.g. "gru-256"
    kind: str  # model_kind: gru, lstm, rnn, mlp, ngram
    description: str  # of the model, e.g. "gru, hidden 256, 1 layer(s), char level"
    params: Mapping[str, Any]
    data_checksum: str
    model_checksum: str
    dataset: Mapping[str, str]  # name and source of the training data
    metrics: Mapping[str, float]  # logged once (best_val_ppl, the references' val figures...)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "description": self.description,
                "params": dict(self.params), "data_checksum": self.data_checksum,
                "model_checksum": self.model_checksum, "dataset": dict(self.dataset),
                "metrics": dict(self.metrics)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        return cls(name=data["name"], kind=data["kind"], description=data["description"],
                   params=data["params"], data_checksum=data["data_checksum"],
                   model_checksum=data["model_checksum"], dataset=data["dataset"],
                   metrics=data["metrics"])


@dataclass(frozen=True)
class Evaluation:
    """What the evaluate stage measured of one model (whose checksum it names)."""

    model_checksum: str
    metrics: Mapping[str, float]  # logged to the run: test_ppl, val_bpc, ... (references' too)
    figures: Mapping[str, float]  # the registry version's: val_ppl, test_ppl, val_bpc, test_bpc
    samples: str  # Markdown, the run's samples.md

    def to_json(self) -> dict[str, Any]:
        return {"model_checksum": self.model_checksum, "metrics": dict(self.metrics),
                "figures": dict(self.figures), "samples": self.samples}


@dataclass(frozen=True)
class FittedModel:
    """One model of the workspace (`rnn` or `ngram`) and everything its run and registry
    version hold."""

    role: str  # "rnn" or "ngram": its key in metrics.json and evaluation.json
    directory: Path
    record: RunRecord
    files: Mapping[str, Path]  # the logged MLflow Model's files, by name in its directory
    artifacts: tuple[Path, ...]  # the run's other artifacts (reports, figures)
    history: list[dict[str, float]] = field(default_factory=list)  # per epoch, with "epoch"
    evaluation: Evaluation | None = None  # None: evaluate has not scored this very model
    tags: Mapping[str, str] = field(default_factory=dict)  # more tags of a recorded run

    @property
    def level(self) -> str:
        return str(self.record.params["tokenize_level"])

    @property
    def vocab_size(self) -> int:
        return int(self.record.params["vocab_size"])


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RnnlmError(f"{path} is missing: run `dvc pull` or `dvc repro`") from None


def _record(report: Path) -> RunRecord:
    data = read_json(report)
    if RUN_KEY not in data:
        raise RnnlmError(f"{report} holds no run record (it was written by an older rnnlm): "
                         f"run `dvc repro -f -s {'train' if report == TRAIN_REPORT else 'ngram'}`, "
                         "then `make repro`")
    return RunRecord.from_json(data[RUN_KEY])


def _evaluation(role: str, checksum: str) -> Evaluation | None:
    """evaluate's figures of this very model, or None (it has not scored it yet)."""
    if not EVALUATION.is_file():
        return None
    entry = read_json(EVALUATION).get(role)
    if not entry or entry["model_checksum"] != checksum:
        return None
    return Evaluation(entry["model_checksum"], entry["metrics"], entry["figures"],
                      entry["samples"])


def _checked(directory: Path, report: Path, record: RunRecord, actual: str) -> None:
    if actual != record.model_checksum:
        raise RnnlmError(f"{directory} is not the model {report} describes (checksum "
                         f"{actual[:12]}, recorded {record.model_checksum[:12]}): run "
                         "`dvc checkout` to restore the workspace's outputs, or `dvc repro`")


def workspace_models() -> list[FittedModel]:
    """The network and the n-gram of the workspace (the current directory), checked against
    their reports; a missing or inconsistent one is a clear error."""
    from rnnlm.checksums import directory_checksum, weights_checksum
    from rnnlm.neural.checkpoints import LAST, checkpoint_path, read_checkpoint
    from rnnlm.neural.resume import LAST_CHECKPOINT_TAG

    models = []
    if not (RNN_DIR / "model.json").is_file() or not (NGRAM_DIR / "model.json").is_file():
        raise RnnlmError(f"no fitted models in {RNN_DIR} and {NGRAM_DIR}: run `dvc pull` "
                         "(a teammate's pushed outputs) or `dvc repro`")
    rnn = _record(TRAIN_REPORT)
    meta = read_json(RNN_DIR / "model.json")
    best = RNN_DIR / meta["checkpoint"]
    _checked(RNN_DIR, TRAIN_REPORT, rnn,
             weights_checksum(read_checkpoint(best)["state_dict"]))
    # A training resumed from a pulled last.ckpt continues the run recorded for it.
    last = checkpoint_path(CHECKPOINTS, LAST)
    resumable = ({LAST_CHECKPOINT_TAG: weights_checksum(read_checkpoint(last)["state_dict"])}
                 if last.is_file() else {})
    history = pd.read_csv(TRAIN_METRICS).to_dict("records") if TRAIN_METRICS.is_file() else []
    models.append(FittedModel(
        "rnn", RNN_DIR, rnn,
        files={"model.json": RNN_DIR / "model.json", "vocab.parquet": RNN_DIR / "vocab.parquet",
               best.relative_to(RNN_DIR).as_posix(): best},
        artifacts=tuple(p for p in (TRAIN_REPORT, TRAIN_METRICS, TRAIN_CURVES) if p.is_file()),
        history=history, evaluation=_evaluation("rnn", rnn.model_checksum), tags=resumable))
    ngram = _record(NGRAM_REPORT)
    _checked(NGRAM_DIR, NGRAM_REPORT, ngram, directory_checksum(NGRAM_DIR))
    models.append(FittedModel(
        "ngram", NGRAM_DIR, ngram,
        files={path.name: path for path in sorted(NGRAM_DIR.iterdir())},
        artifacts=(NGRAM_REPORT,), evaluation=_evaluation("ngram", ngram.model_checksum)))
    return models
