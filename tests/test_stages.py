"""Stage functions run in a temporary working directory, without DVC."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from pipeline import paths
from pipeline.ngram import ngram_stage
from pipeline.partition import partition
from pipeline.settings import Params, parse_params
from rnnlm import generate, ngram_io
from rnnlm.errors import RnnlmError
from rnnlm.ngram import perplexity
from rnnlm.tokens import split_stream, tokenize, write_tokens
from rnnlm.vocab import Vocab

ROOT = Path(__file__).resolve().parents[1]
TEXT = ("the time traveller for so it will be convenient to speak of him was expounding a "
        "recondite matter to us his grey eyes shone and twinkled ")


def params_with(**sections: dict[str, object]) -> Params:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, values in sections.items():
        raw[name].update(values)
    return parse_params(raw)


def prepare_ids(text: str, params: Params) -> None:
    """What the stages before ngram leave behind, written in the current directory."""
    splits = split_stream(tokenize(text, params.tokenize.level), 0.9, 0.05)
    for name, part in splits.items():
        write_tokens(paths.tokens_path(name), part)
    Vocab.build(splits["train"]).save(paths.VOCAB)
    partition(params)


def test_partition_names_the_short_split_and_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    splits = split_stream(tokenize("abcdefghij" * 300, "char"), 0.9, 0.05)  # val: 150 tokens
    for name, part in splits.items():
        write_tokens(paths.tokens_path(name), part)
    Vocab.build(splits["train"]).save(paths.VOCAB)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["partition"].update(batch_size=8, num_steps=20)  # train (2700) fits, val (150) does not
    with pytest.raises(RnnlmError, match=r"the val split of 150 tokens is too short"):
        partition(parse_params(raw))
    assert not paths.IDS_DIR.exists() or not any(paths.IDS_DIR.iterdir())
    assert not (paths.REPORTS / "partition.json").exists()


def test_ngram_stage_writes_model_report_and_one_mlflow_run(tmp_path, monkeypatch,
                                                            mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = params_with(ngram={"method": "kneser_ney", "order": 4},
                         partition={"batch_size": 2, "num_steps": 5})
    prepare_ids(TEXT * 40, params)
    ngram_stage(params)

    report = json.loads((paths.NGRAM_REPORT).read_text())
    vocab = Vocab.load(paths.VOCAB)
    assert report["method"] == "kneser_ney" and report["order"] == 4
    assert report["uniform"]["val_ppl"] == pytest.approx(len(vocab), rel=1e-12)
    assert 1 < report["val_ppl"] < report["unigram"]["val_ppl"] < len(vocab)
    assert len(report["discounts"]) == 4
    val = np.load(paths.ids_path("val"))
    assert report["predicted_tokens"]["val"] == len(val) - 1

    # The saved model scores exactly as the stage did, and its counts open in pandas.
    model, saved_vocab, text = ngram_io.load_ngram(paths.NGRAM_DIR)
    assert perplexity(model.token_probs(val)) == report["val_ppl"]
    assert saved_vocab.tokens == vocab.tokens and text["level"] == "char"
    train_tokens = len(np.load(paths.ids_path("train")))
    for k in (1, 2):
        counts = pd.read_parquet(paths.NGRAM_DIR / f"order{k}.parquet")
        assert list(counts.columns) == [*(f"w{j}" for j in range(1, k + 1)), "count"]
        assert counts["count"].sum() == train_tokens - k + 1
    sample = generate.continue_text(model, saved_vocab, text, "the time", 30, seed=3)
    assert sample.startswith("the time") and len(sample) == len("the time") + 30
    assert sample == generate.continue_text(model, saved_vocab, text, "the time", 30, seed=3)

    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["val_ppl"] == report["val_ppl"]
    assert run.data.metrics["test_ppl"] == report["test_ppl"]
    assert run.data.metrics["uniform_val_ppl"] == pytest.approx(len(vocab))
    assert run.data.params["method"] == "kneser_ney"
    assert run.data.params["vocab_size"] == str(len(vocab))
    assert run.data.params["discounts_order4"].count(",") == 2
    assert run.data.tags["model_kind"] == "ngram"
    assert len(run.data.tags["data_checksum"]) == 64


def test_ngram_stage_refuses_an_unsmoothed_model_and_writes_nothing(tmp_path, monkeypatch,
                                                                     mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = params_with(ngram={"eps": [0.0]}, partition={"batch_size": 2, "num_steps": 5})
    prepare_ids(TEXT * 40 + "a quick brown fox jumps over the lazy dog " * 10, params)
    with pytest.raises(RnnlmError, match=r"probability 0 .* smooth every order \(ngram.eps > 0\)"):
        ngram_stage(params)
    assert not paths.NGRAM_DIR.exists() and not paths.NGRAM_REPORT.exists()
