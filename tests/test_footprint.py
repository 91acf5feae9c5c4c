"""A network too large for the machine is refused before it is allocated, naming model.hidden."""

from __future__ import annotations

import time

import pytest
from test_stages import TEXT, params_with, prepare_ids

from pipeline.train import train_stage
from rnnlm import layout
from rnnlm.errors import RnnlmError
from rnnlm.neural.footprint import BYTES_PER_PARAMETER, check_fits, parameter_count
from rnnlm.neural.models import build_model

MODEL = {"kind": "gru", "hidden": 256, "num_layers": 1, "dropout": 0.2, "embed": 32,
         "tie_weights": False, "context": 8}


@pytest.mark.parametrize("kind", ["scratch", "rnn", "gru", "lstm", "mlp"])
def test_the_count_on_the_meta_device_is_the_real_networks(kind: str) -> None:
    model = {**MODEL, "kind": kind, "hidden": 24}
    real = build_model(vocab_size=30, **model)
    assert parameter_count(30, model) == sum(p.numel() for p in real.parameters())


def test_a_network_over_the_available_memory_is_refused_naming_model_hidden() -> None:
    need = parameter_count(28, MODEL) * BYTES_PER_PARAMETER
    check_fits(28, MODEL, available=need)  # exactly enough
    with pytest.raises(RnnlmError, match=r"model\.hidden = 256 .* more than the"):
        check_fits(28, MODEL, available=need - 1)


def test_the_train_stage_refuses_hidden_100000_at_once_and_writes_nothing(
        tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = params_with(model={"hidden": 100_000}, train={"accelerator": "cpu", "devices": 1},
                         partition={"batch_size": 4, "num_steps": 10})
    prepare_ids(TEXT * 30, params)
    started = time.perf_counter()
    with pytest.raises(RnnlmError, match=r"model\.hidden = 100,000 .* GiB"):
        train_stage(params)
    assert time.perf_counter() - started < 30
    assert not (tmp_path / layout.RNN_DIR).exists()
