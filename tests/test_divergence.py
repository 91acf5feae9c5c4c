"""A diverged training is refused: the stage fails with one line naming train.lr, its MLflow run
ends FAILED without a logged model, and models/rnn and the reports stay exactly as the previous
training left them. Every report is strict JSON: write_json refuses NaN and infinities."""

import io
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.project import params_with
from helpers.stages import TEXT, TINY_MODEL, prepare_ids
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

from pipeline import _stage
from pipeline._stage import run_stage
from pipeline.train import train_stage
from rnnlm import layout
from rnnlm.errors import RnnlmError
from rnnlm.io import write_json
from rnnlm.neural.checkpoints import PreviousModel, read_checkpoint
from rnnlm.neural.task import LanguageModelTask, TrainingDiverged
from rnnlm.settings import Params
from rnnlm.text.vocab import Vocab
from rnnlm.tracking import records

LAST = layout.CHECKPOINTS / "last.ckpt"


def tiny(**train: object) -> Params:
    return params_with(partition={"batch_size": 4, "num_steps": 10}, model=TINY_MODEL,
                       train={"accelerator": "cpu", "devices": 1, "schedule": "none", **train})


def files(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (hidden ones too) and its bytes."""
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def outputs() -> dict[str, Any]:
    """What the train stage writes, as it stands."""
    reports = (layout.TRAIN_REPORT, layout.TRAIN_METRICS, layout.TRAIN_CURVES)
    return {"models": files(layout.RNN_DIR.parent),  # the model and any sibling set aside
            **{str(p): p.read_bytes() if p.exists() else None for p in reports}}


def runs(store: str) -> list:
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    assert experiment is not None
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])


def logged_models(store: str, run_id: str) -> list:
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    assert experiment is not None
    return [m for m in client.search_logged_models([experiment.experiment_id])
            if m.source_run_id == run_id]


def diverge_from_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int, seen: list[bytes]) -> None:
    """From epoch `epoch` (1-based) on, train at lr 1e9, as a schedule gone wrong would; `seen`
    gets the bytes of last.ckpt as the first such epoch starts."""
    original = LanguageModelTask.on_train_epoch_start

    def start(self: LanguageModelTask) -> None:
        if self.current_epoch + 1 == epoch:
            seen.append(LAST.read_bytes())
        if self.current_epoch + 1 >= epoch:
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = 1e9
        original(self)

    monkeypatch.setattr(LanguageModelTask, "on_train_epoch_start", start)


def test_a_diverging_training_fails_the_stage_and_keeps_the_previous_model(
        tmp_path, monkeypatch, mlflow_store, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    good = tiny(epochs=1)
    prepare_ids(TEXT * 30, good)
    train_stage(good)
    before = outputs()
    [trained] = runs(mlflow_store)
    assert logged_models(mlflow_store, trained.info.run_id)  # a model a good training logs

    # What `dvc exp run -S train.lr=1e9 -S model.hidden=32 -S train.epochs=2` runs.
    diverging = params_with(partition={"batch_size": 4, "num_steps": 10},
                            model={**TINY_MODEL, "hidden": 32},
                            train={"accelerator": "cpu", "devices": 1, "epochs": 2, "lr": 1e9})
    monkeypatch.setattr(_stage, "load_params", lambda: diverging)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        run_stage("train", train_stage)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if line.startswith("error in stage train")]
    vocab_size = len(Vocab.load(layout.VOCAB))
    assert line.startswith("error in stage train: training diverged: val perplexity ")
    assert f"after epoch 1 (the uniform model's is {vocab_size}): lower train.lr (now 1e+09)" in (
        line)
    assert "Traceback" not in err

    assert outputs() == before  # models/rnn byte for byte, nothing aside, reports untouched
    assert not PreviousModel(layout.RNN_DIR, LAST).aside.exists()
    first, failed = runs(mlflow_store)
    assert (first.info.status, failed.info.status) == ("FINISHED", "FAILED")
    assert not logged_models(mlflow_store, failed.info.run_id)
    assert records.MODEL_TAG not in failed.data.tags
    assert not MlflowClient(mlflow_store).list_artifacts(failed.info.run_id)
    json.loads(layout.TRAIN_REPORT.read_text(), parse_constant=pytest.fail)  # strict JSON


def test_a_first_training_that_diverges_leaves_no_model(tmp_path, monkeypatch,
                                                        mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = tiny(epochs=1, lr=1e9)
    prepare_ids(TEXT * 30, params)
    with pytest.raises(TrainingDiverged, match=r"lower train\.lr \(now 1e\+09\)"):
        train_stage(params)
    assert not layout.RNN_DIR.exists() and not PreviousModel(layout.RNN_DIR, LAST).aside.exists()
    assert not layout.TRAIN_REPORT.exists() and not layout.TRAIN_METRICS.exists()
    assert [r.info.status for r in runs(mlflow_store)] == ["FAILED"]


def test_a_divergence_after_the_new_training_saved_checkpoints_keeps_the_previous_model(
        tmp_path, monkeypatch, mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = tiny(epochs=1)
    prepare_ids(TEXT * 30, params)
    train_stage(params)
    before = outputs()

    seen: list[bytes] = []
    diverge_from_epoch(monkeypatch, 3, seen)
    lr = re.escape(f"{params.train.lr:g}")  # the committed params.yaml's
    with pytest.raises(TrainingDiverged, match=rf"after epoch 3 .*lower train\.lr \(now {lr}\)"):
        train_stage(tiny(epochs=4).model_copy(update={"seed": 7}))
    # The new training had checkpoints of its own (epoch 2's) when it diverged...
    [new_last] = seen
    assert new_last != before["models"]["rnn/checkpoints/last.ckpt"]
    assert torch.load(io.BytesIO(new_last), weights_only=True)["epoch"] == 1
    # ...and still the previous model is back, byte for byte, with nothing left aside.
    assert outputs() == before
    assert [r.info.status for r in runs(mlflow_store)] == ["FINISHED", "FAILED"]


def test_a_resumed_training_that_diverges_puts_its_checkpoints_back(tmp_path, monkeypatch,
                                                                    mlflow_store) -> None:
    monkeypatch.chdir(tmp_path)
    params = tiny(epochs=3)
    prepare_ids(TEXT * 30, params)
    original = LanguageModelTask.on_train_epoch_end

    def crash_after_the_first_epoch(self: LanguageModelTask) -> None:
        if self.current_epoch == 0:
            raise RuntimeError("simulated crash")
        original(self)

    with monkeypatch.context() as patch:
        patch.setattr(LanguageModelTask, "on_train_epoch_end", crash_after_the_first_epoch)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train_stage(params)
    interrupted = outputs()  # epoch 1's checkpoints, kept for a resume
    assert read_checkpoint(LAST)["epoch"] == 0

    seen: list[bytes] = []
    diverge_from_epoch(monkeypatch, 3, seen)
    with pytest.raises(TrainingDiverged, match="after epoch 3"):
        train_stage(tiny(epochs=3, resume=True))
    # Epoch 2 of the resumed training was saved before epoch 3 diverged...
    [resumed_last] = seen
    assert torch.load(io.BytesIO(resumed_last), weights_only=True)["epoch"] == 1
    # ...and models/rnn is back as the interrupted training left it, ready to resume again.
    assert outputs() == interrupted and read_checkpoint(LAST)["epoch"] == 0
    assert [r.info.status for r in runs(mlflow_store)] == ["FAILED"]  # the one run, resumed


def test_the_check_is_on_the_validation_inside_fit_only() -> None:
    task = LanguageModelTask(5, {**TINY_MODEL}, lr=0.5)
    task._raise_if_diverged(math.log(4.9) * 10, 4.9, epoch=1)  # better than uniform: accepted
    for nll, ppl, seen in [(math.log(5) * 10, 5.0, "val perplexity 5 after epoch 2"),
                           (1e300, math.inf, "val perplexity inf after epoch 2"),
                           (math.nan, math.inf, "val perplexity nan after epoch 2")]:
        with pytest.raises(TrainingDiverged, match=rf"{seen} \(the uniform model's is 5\): "
                           r"lower train\.lr \(now 0\.5\)"):
            task._raise_if_diverged(nll, ppl, epoch=2)
    assert issubclass(TrainingDiverged, RnnlmError)  # one line from run_stage, no traceback


# --- strict JSON --------------------------------------------------------------------------

KEYS = st.text(alphabet="abcxyz_", min_size=1, max_size=4)
FINITE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8)


@st.composite
def one_non_finite(draw: st.DrawFn) -> tuple[Any, str, float]:
    """A JSON-like value with exactly one NaN or infinity somewhere, its key path, and it."""
    bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    steps = draw(st.lists(st.one_of(KEYS, st.integers(0, 2)), max_size=4))
    value: Any = bad
    for step in reversed(steps):  # built from the inside out
        if isinstance(step, str):
            value = {**draw(st.dictionaries(KEYS, FINITE, max_size=2)), step: value}
        else:
            value = [*draw(st.lists(FINITE, min_size=step, max_size=step)), value,
                     *draw(st.lists(FINITE, max_size=2))]
    path = "".join(f"[{s}]" if isinstance(s, int) else (f".{s}" if i else s)
                   for i, s in enumerate(steps))
    return value, path or "the whole value", bad


@settings(max_examples=200, deadline=None)
@given(one_non_finite(), st.booleans())
def test_write_json_refuses_nan_and_infinities_and_writes_nothing(case, existing: bool) -> None:
    data, path, bad = case
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "report.json"
        if existing:
            target.write_text('{"kept": 1}\n')
        with pytest.raises(RnnlmError) as refused:
            write_json(target, data)
        assert str(refused.value) == (f"refusing to write {target}: {path} is {bad!r}, which "
                                      "strict JSON cannot hold")
        # No temporary file either; what was there stays as it was.
        assert [p.name for p in Path(tmp).iterdir()] == (["report.json"] if existing else [])
        if existing:
            assert target.read_text() == '{"kept": 1}\n'


@settings(max_examples=100, deadline=None)
@given(FINITE)
def test_write_json_writes_finite_values_as_strict_json(data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "report.json"
        write_json(target, data)
        text = target.read_text()
        assert json.loads(text, parse_constant=pytest.fail) == data
        assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"  # same bytes as before


def test_write_json_names_the_key_of_a_numpy_nan_and_can_keep_key_order(tmp_path) -> None:
    import numpy as np

    with pytest.raises(RnnlmError, match=r"rnn\.history\[1\]\.val_ppl is nan"):
        write_json(tmp_path / "m.json", {"rnn": {"history": [{"val_ppl": 3.0},
                                                             {"val_ppl": np.float64("nan")}]}})
    assert not list(tmp_path.iterdir())
    write_json(tmp_path / "m.json", {"b": 1, "a": 2}, sort_keys=False)  # linear.json's order
    assert (tmp_path / "m.json").read_text() == '{\n  "b": 1,\n  "a": 2\n}\n'
