"""A fitted n-gram model on disk: one directory holding all that scoring and sampling need.

    order1.parquet .. orderN.parquet   counts: columns w1..wk (token ids) and count
    vocab.parquet                      the ids' vocabulary (index, token, count)
    model.json                         method, order, its smoothing settings, how text was cut

Read the counts with pandas and join on vocab.parquet's `index` to see the tokens.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from rnnlm.errors import RnnlmError
from rnnlm.io import atomic_dir, write_json
from rnnlm.ngram.counts import NgramCounts
from rnnlm.ngram.model import NgramModel, Smoothing
from rnnlm.text.vocab import Vocab

MODEL_FILE = "model.json"
VOCAB_FILE = "vocab.parquet"


def save_ngram(directory: str | Path, model: NgramModel, vocab_file: Path,
               text: Mapping[str, object]) -> None:
    """Write the model directory whole, replacing any previous one only once complete; the
    vocabulary is the vocab stage's file, copied as it is (never loaded: at a gigabyte of
    words it holds millions of strings)."""
    size = Vocab.size_of(vocab_file)
    if size != model.vocab_size:
        raise RnnlmError(f"vocabulary of {size} tokens for a model of {model.vocab_size}")
    with atomic_dir(directory) as tmp:
        model.counts.save(tmp)
        shutil.copyfile(vocab_file, tmp / VOCAB_FILE)
        write_json(tmp / MODEL_FILE, {
            "method": model.method,
            "order": model.order,
            "vocab_size": model.vocab_size,
            "settings": model.settings,
            "text": dict(text),
        })


def load_ngram(directory: str | Path) -> tuple[NgramModel, Vocab, dict[str, object]]:
    """The model, its vocabulary, and how text was cleaned and tokenized for it."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RnnlmError(f"no n-gram model in {directory}: run `dvc repro ngram` first") from None
    vocab = Vocab.load(directory / VOCAB_FILE)
    counts = NgramCounts.load(directory, meta["order"], meta["vocab_size"])
    model = Smoothing.saved(meta["method"], meta["settings"]).fit(counts)
    return model, vocab, meta["text"]
