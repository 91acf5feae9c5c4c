"""A tiny corpus and what the stages before training leave, written in the current directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from helpers.project import committed_params, params_with
from pipeline.partition import partition
from rnnlm import layout
from rnnlm.settings import Params
from rnnlm.text.splits import split_stream
from rnnlm.text.token_files import write_token_files
from rnnlm.text.tokenizers import tokenize
from rnnlm.text.vocab import Vocab

TEXT = ("the time traveller for so it will be convenient to speak of him was expounding a "
        "recondite matter to us his grey eyes shone and twinkled ")
TINY_TRAIN = {"epochs": 3, "accelerator": "cpu", "devices": 1}
TINY_MODEL = {"kind": "gru", "hidden": 16}


class SteadyMachine:
    """A CpuMeter (rnnlm.neural.threads) that reads every core as busy with other processes,
    whatever the machine runs: a training with `train.threads: auto` takes one thread, always.
    A small network's digits change with its thread count, and two threads of a tiny training
    beside other work only wait for each other. (conftest puts it in place for every test; a
    fixture of a wider scope that trains does it itself.)"""

    def others_busy(self) -> float:
        return float(os.cpu_count() or 1)


def prepare_ids(text: str, params: Params) -> None:
    """What the stages before ngram leave behind, written in the current directory."""
    splits = split_stream(tokenize(text, params.tokenize.level), 0.9, 0.05)
    write_token_files(layout.TOKENS_DIR, splits)
    Vocab.build(splits["train"]).save(layout.VOCAB)
    partition(params)


def prepared_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params: Params,
                         *names: str) -> list[Path]:
    """Directories `names` under `tmp_path`, each holding what the stages before train leave."""
    made = []
    for name in names:
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        prepare_ids(TEXT * 30, params)
        made.append(tmp_path / name)
    return made


def tiny(hidden: int = 16) -> Params:
    """A GRU and an n-gram small enough to train, score and serve in seconds (char level)."""
    return params_with(tokenize={"level": "char"}, partition={"batch_size": 4, "num_steps": 10},
                       model={"kind": "gru", "hidden": hidden}, train=TINY_TRAIN,
                       evaluate={"prefixes": ["the time"], "tokens": 10})


def train_params(**train: object) -> Params:
    """A tiny GRU trained on the CPU, with the given train settings."""
    return params_with(partition={"batch_size": 4, "num_steps": 10}, model=TINY_MODEL,
                       train={**TINY_TRAIN, **train})


def tiny_params(where: Path, epochs: int, **train: object) -> dict:
    """params.yaml of a tiny training in `where`, with its ids prepared; returns the raw dict."""
    raw = committed_params()
    raw["partition"].update(batch_size=4, num_steps=10)
    raw["model"].update(TINY_MODEL)
    raw["train"].update(epochs=epochs, accelerator="cpu", devices=1, **train)
    (where / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    prepare_ids(TEXT * 30, params_with(partition=raw["partition"]))
    return raw
