"""Stage functions run in a temporary working directory, without DVC."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.metrics import model_metrics
from helpers.project import committed_params, params_with
from helpers.stages import (
    TEXT,
    TINY_MODEL,
    TINY_TRAIN,
    prepare_ids,
    prepared_directories,
    train_params,
)
from mlflow import MlflowClient

from pipeline.evaluate import evaluate_stage
from pipeline.ngram import ngram_stage
from pipeline.partition import partition
from pipeline.train import train_stage
from rnnlm import layout
from rnnlm.checksums import directory_checksum, weights_checksum
from rnnlm.cli import generate
from rnnlm.cli import runs as runs_table
from rnnlm.errors import RnnlmError
from rnnlm.neural.inference import load_task, split_perplexity
from rnnlm.neural.task import LanguageModelTask
from rnnlm.ngram import store as ngram_io
from rnnlm.sampling import continue_text
from rnnlm.scoring import from_probs
from rnnlm.settings import parse_params
from rnnlm.text.splits import split_stream
from rnnlm.text.token_files import write_token_files
from rnnlm.text.tokenizers import tokenize
from rnnlm.text.vocab import Vocab
from rnnlm.tracking import records


def test_partition_names_the_short_split_and_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    splits = split_stream(tokenize("abcdefghij" * 300, "char"), 0.9, 0.05)  # val: 150 tokens
    write_token_files(layout.TOKENS_DIR, splits)
    Vocab.build(splits["train"]).save(layout.VOCAB)
    raw = committed_params()
    raw["partition"].update(batch_size=8, num_steps=20)  # train (2700) fits, val (150) does not
    with pytest.raises(RnnlmError, match=r"the val split of 150 tokens is too short"):
        partition(parse_params(raw))
    assert not layout.IDS_DIR.exists() or not any(layout.IDS_DIR.iterdir())
    assert not (layout.REPORTS / "partition.json").exists()


def test_ngram_stage_writes_model_report_and_one_mlflow_run(tmp_path, monkeypatch,
                                                            mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = params_with(ngram={"method": "kneser_ney", "order": 4},
                         partition={"batch_size": 2, "num_steps": 5})
    prepare_ids(TEXT * 40, params)
    ngram_stage(params)

    report = json.loads((layout.NGRAM_REPORT).read_text())
    vocab = Vocab.load(layout.VOCAB)
    assert report["method"] == "kneser_ney" and report["order"] == 4
    assert report["uniform"]["val_ppl"] == pytest.approx(len(vocab), rel=1e-12)
    assert 1 < report["val_ppl"] < report["unigram"]["val_ppl"] < len(vocab)
    assert len(report["discounts"]) == 4
    val = np.load(layout.ids_path("val"))
    assert report["predicted_tokens"]["val"] == len(val) - 1

    # The saved model scores exactly as the stage did, and its counts open in pandas.
    model, saved_vocab, text = ngram_io.load_ngram(layout.NGRAM_DIR)
    assert from_probs(model.token_probs(val)) == report["val_ppl"]
    assert saved_vocab.tokens == vocab.tokens and text["level"] == "char"
    train_tokens = len(np.load(layout.ids_path("train")))
    for k in (1, 2):
        counts = pd.read_parquet(layout.NGRAM_DIR / f"order{k}.parquet")
        assert list(counts.columns) == [*(f"w{j}" for j in range(1, k + 1)), "count"]
        assert counts["count"].sum() == train_tokens - k + 1
    sample = continue_text(model, saved_vocab, text, "the time", 30, seed=3)
    assert sample.startswith("the time") and len(sample) == len("the time") + 30
    assert sample == continue_text(model, saved_vocab, text, "the time", 30, seed=3)

    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["val_ppl"] == run.data.metrics["best_val_ppl"] == report["val_ppl"]
    # The test split is scored once, by the evaluate stage.
    assert "test_ppl" not in run.data.metrics and "test_ppl" not in report
    assert run.data.metrics["uniform_val_ppl"] == pytest.approx(len(vocab))
    assert run.data.params["method"] == "kneser_ney"
    assert run.data.params["vocab_size"] == str(len(vocab))
    assert run.data.params["discounts_order4"].count(",") == 2
    assert run.data.tags["model_kind"] == "ngram"
    assert len(run.data.tags["data_checksum"]) == 64
    # No run id in the report: the run is found by the checksum of the model it fitted.
    assert "mlflow_run_id" not in report
    assert run.data.tags[records.MODEL_TAG] == directory_checksum(layout.NGRAM_DIR)
    # The training ids as the run's dataset (the UI's Dataset column), under the data's checksum.
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.name.endswith(", char")
    assert run.data.tags["data_checksum"].startswith(dataset.dataset.digest)


def test_ngram_stage_refuses_an_unsmoothed_model_and_writes_nothing(tmp_path, monkeypatch,
                                                                     mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = params_with(ngram={"eps": [0.0]}, partition={"batch_size": 2, "num_steps": 5})
    prepare_ids(TEXT * 40 + "a quick brown fox jumps over the lazy dog " * 10, params)
    with pytest.raises(RnnlmError, match=r"probability 0 .* smooth every order \(ngram.eps > 0\)"):
        ngram_stage(params)
    assert not layout.NGRAM_DIR.exists() and not layout.NGRAM_REPORT.exists()


def test_train_stage_writes_reports_and_one_run_with_per_epoch_history(
        tmp_path, monkeypatch, mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = train_params()
    prepare_ids(TEXT * 30, params)
    train_stage(params)

    report = json.loads(layout.TRAIN_REPORT.read_text())
    history = pd.read_csv(layout.TRAIN_METRICS)
    assert history["epoch"].tolist() == [1, 2, 3]
    assert report["epochs"] == 3 and report["best_val_ppl"] == history["val_ppl"].min()
    assert layout.TRAIN_CURVES.read_bytes()[:4] == b"\x89PNG"
    assert {p.name for p in layout.CHECKPOINTS.iterdir()} == {"best.ckpt", "last.ckpt"}
    assert json.loads((layout.RNN_DIR / "model.json").read_text())["model"]["kind"] == "gru"

    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    # Nothing volatile in the files DVC tracks: timings and the run id stay in MLflow.
    assert not {"mlflow_run_id", "wall_seconds", "tokens_per_s"} & set(report)
    assert "tokens_per_s" not in history.columns
    best = torch.load(layout.CHECKPOINTS / "best.ckpt", weights_only=True)
    assert run.data.tags[records.MODEL_TAG] == weights_checksum(best["state_dict"])
    # Nor where the clone lies: the checkpoint names its files relative to the repository.
    assert str(tmp_path) not in repr(best["callbacks"])
    steps = client.get_metric_history(run.info.run_id, "val_ppl")
    assert [(m.step, m.value) for m in steps] == list(zip([1, 2, 3], history["val_ppl"],
                                                         strict=True))
    assert {"train_ppl", "tokens_per_s", "lr"} <= set(run.data.metrics)
    assert run.data.params["model_kind"] == "gru" and run.data.params["hidden"] == "16"
    assert run.data.tags["model_kind"] == "gru"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "train.json", "train_metrics.csv", "train_curves.png"}


def test_a_resumed_training_ends_where_an_uninterrupted_one_does(tmp_path, monkeypatch,
                                                                 mlflow_store) -> None:
    params = train_params(epochs=4)
    whole, broken = prepared_directories(tmp_path, monkeypatch, params, "whole", "broken")
    monkeypatch.chdir(whole)
    train_stage(params)
    expected = pd.read_csv(layout.TRAIN_METRICS)

    monkeypatch.chdir(broken)
    original = LanguageModelTask.on_train_epoch_end

    def crash_after_two_epochs(self) -> None:
        if self.current_epoch == 1:
            raise RuntimeError("simulated crash")
        original(self)

    monkeypatch.setattr(LanguageModelTask, "on_train_epoch_end", crash_after_two_epochs)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_stage(params)
    monkeypatch.setattr(LanguageModelTask, "on_train_epoch_end", original)
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    crashed = [r for r in client.search_runs([experiment.experiment_id])
               if r.info.status == "FAILED"]
    assert len(crashed) == 1  # marked FAILED, not left RUNNING

    train_stage(params_with(partition={"batch_size": 4, "num_steps": 10}, model=TINY_MODEL,
                            train={**TINY_TRAIN, "epochs": 4, "resume": True}))
    resumed = pd.read_csv(layout.TRAIN_METRICS)
    columns = ["epoch", "train_ppl", "val_ppl", "lr"]
    pd.testing.assert_frame_equal(resumed[columns], expected[columns])
    run = client.get_run(crashed[0].info.run_id)  # the same run, continued
    assert run.info.status == "FINISHED"
    assert len(client.search_runs([experiment.experiment_id])) == 2  # whole and broken
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_ppl")] == [1, 2, 3, 4]


def test_resuming_with_other_settings_is_refused(tmp_path, monkeypatch, mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = train_params(epochs=1)
    prepare_ids(TEXT * 30, params)
    with pytest.raises(RnnlmError, match=r"train once with train\.resume: false first"):
        train_stage(train_params(epochs=1, resume=True))
    train_stage(params)
    lr = re.escape(f"{params.train.lr:g}")  # the committed params.yaml's
    with pytest.raises(RnnlmError, match=rf"other settings \(lr: {lr} then, 0\.01 now\)"):
        train_stage(train_params(epochs=1, resume=True, lr=0.01))
    with pytest.raises(RnnlmError, match=r"train\.epochs: 1 then, 2 now"):
        train_stage(train_params(epochs=2, resume=True))
    changed = params_with(partition={"batch_size": 4, "num_steps": 12}, model=TINY_MODEL,
                          train={**TINY_TRAIN, "epochs": 1, "resume": True})
    with pytest.raises(RnnlmError, match=r"partition\.num_steps: 10 then, 12 now"):
        train_stage(changed)


def test_float16_on_a_cpu_is_refused_before_any_run(tmp_path, monkeypatch, mlflow_store
                                                   ) -> None:
    monkeypatch.chdir(tmp_path)
    params = train_params(precision="16-mixed")
    prepare_ids(TEXT * 30, params)
    with pytest.raises(RnnlmError, match=r"train\.precision '16-mixed' needs a GPU"):
        train_stage(params)
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    assert experiment is None or not client.search_runs([experiment.experiment_id])


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_bfloat16_mixed_precision_trains_on_a_cpu_and_repeats_itself(
        tmp_path, monkeypatch, mlflow_store, kind) -> None:
    def in_precision(precision: str):
        return params_with(partition={"batch_size": 4, "num_steps": 10},
                           model={**TINY_MODEL, "kind": kind},
                           train={**TINY_TRAIN, "epochs": 2, "precision": precision})

    runs = {"first": "bf16-mixed", "again": "bf16-mixed", "float32": "32"}
    weights, val_ppl = {}, {}
    for name, where in zip(runs, prepared_directories(tmp_path, monkeypatch,
                                                       in_precision("32"), *runs), strict=True):
        monkeypatch.chdir(where)
        train_stage(in_precision(runs[name]))
        best = torch.load(layout.CHECKPOINTS / "best.ckpt", weights_only=True)["state_dict"]
        assert {t.dtype for t in best.values()} == {torch.float32}  # mixed: float32 weights
        weights[name] = weights_checksum(best)
        val_ppl[name] = pd.read_csv(layout.TRAIN_METRICS)["val_ppl"].iloc[-1]
    assert weights["first"] == weights["again"] != weights["float32"]  # its own arithmetic
    assert val_ppl["first"] == pytest.approx(val_ppl["float32"], rel=0.05)  # and as good


def test_a_non_finite_loss_stops_training_and_fails_the_run(tmp_path, monkeypatch,
                                                            mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = train_params(optimizer="sgd", lr=1e38, clip=0.0)
    prepare_ids(TEXT * 30, params)
    with pytest.raises(RnnlmError, match=r"non-finite at epoch 1, step \d+ of that epoch"):
        train_stage(params)
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    assert [r.info.status for r in client.search_runs([experiment.experiment_id])] == ["FAILED"]


def test_evaluate_scores_every_model_on_the_same_splits_and_logs_to_their_runs(
        tmp_path, monkeypatch, mlflow_store, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    params = params_with(partition={"batch_size": 4, "num_steps": 10}, model=TINY_MODEL,
                         train={**TINY_TRAIN, "epochs": 2},
                         evaluate={"prefixes": ["the time", "Zebra!"], "tokens": 12})
    prepare_ids(TEXT * 30, params)
    ngram_stage(params)
    train_stage(params)
    evaluate_stage(params)

    metrics = model_metrics()
    assert set(metrics) == {"rnn", "ngram"}  # the models; the references are in the table
    ngram_report = json.loads(layout.NGRAM_REPORT.read_text())
    train_report = json.loads(layout.TRAIN_REPORT.read_text())
    # Val as each model's own stage measured it; test scored once, here, by the same protocol.
    assert metrics["ngram"]["val_ppl"] == ngram_report["val_ppl"]
    assert metrics["rnn"]["val_ppl"] == train_report["best_val_ppl"]
    fitted, _, _ = ngram_io.load_ngram(layout.NGRAM_DIR)
    test, val = np.load(layout.ids_path("test")), np.load(layout.ids_path("val"))
    assert metrics["ngram"]["test_ppl"] == from_probs(fitted.token_probs(test))
    best = load_task(layout.CHECKPOINTS / "best.ckpt")
    assert metrics["rnn"]["test_ppl"] == split_perplexity(best, test)
    assert split_perplexity(best, val) == pytest.approx(train_report["best_val_ppl"], rel=1e-6)
    vocab_size = len(Vocab.load(layout.VOCAB))
    assert f"| uniform | 1/V for every token | V = {vocab_size} | {vocab_size:.3f} |" in (
        layout.COMPARISON.read_text())
    table = layout.COMPARISON.read_text()
    assert all(f"| {name} |" in table for name in metrics)
    samples = layout.SAMPLES.read_text()
    assert "## 'the time'" in samples and "## 'Zebra!'" in samples
    assert samples.count("rnn, greedy") == 2 and samples.count("ngram, sampled") == 2
    assert "- **rnn, greedy** (the book's prediction): the time" in samples
    # Cleaned like the corpus (lower case, no punctuation); 'z' never occurs there: <unk>.
    assert "- **ngram, greedy** (the book's prediction): <unk>ebra " in samples

    evaluate_stage(params)  # the same seed: the same samples
    assert layout.SAMPLES.read_text() == samples
    capsys.readouterr()  # drop the training's progress output
    generate.main(["--prefix", "the time", "--tokens", "15", "--seed", "2"])
    cli_rnn = capsys.readouterr().out
    generate.main(["--prefix", "the time", "--tokens", "15", "--seed", "2"])
    assert cli_rnn.startswith("the time") and capsys.readouterr().out == cli_rnn
    runs_table.main(["--csv", str(tmp_path / "runs.csv")])
    listed = pd.read_csv(tmp_path / "runs.csv")
    assert sorted(listed["kind"]) == ["gru", "ngram"]
    assert listed["best_val_ppl"].is_monotonic_increasing
    client = MlflowClient(mlflow_store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    runs = {r.data.tags["model_kind"]: r for r in client.search_runs([experiment.experiment_id])}
    for kind, model in (("gru", "rnn"), ("ngram", "ngram")):
        run = runs[kind]
        assert run.data.metrics["test_ppl"] == metrics[model]["test_ppl"]
        # Each run's samples are its own model's.
        own = client.download_artifacts(run.info.run_id, "samples.md", str(tmp_path))
        text = Path(own).read_text()
        assert f"**{model}, sampled**" in text and text.count("sampled**") == 2
    unigram = from_probs(fitted.truncated(1).token_probs(test))
    assert run.data.metrics["unigram_test_ppl"] == unigram
    assert run.data.metrics["uniform_test_ppl"] == pytest.approx(vocab_size)


def test_stages_use_arrows_jemalloc_pool_unless_told_otherwise(monkeypatch) -> None:
    import pyarrow as pa

    from pipeline._stage import use_jemalloc

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this pyarrow is built without jemalloc")
    before = pa.default_memory_pool()
    try:
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
        pa.set_memory_pool(pa.system_memory_pool())
        use_jemalloc()
        assert pa.default_memory_pool().backend_name == "system"  # the user's choice stands
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        use_jemalloc()
        assert pa.default_memory_pool().backend_name == "jemalloc"
    finally:
        pa.set_memory_pool(before)
