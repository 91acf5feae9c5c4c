"""A network too large for the machine is refused before it is allocated, naming model.hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.project import params_with
from helpers.stages import TEXT, prepare_ids

import pipeline.train
from pipeline import _stage
from pipeline._stage import run_stage
from pipeline.train import train_stage
from rnnlm import layout
from rnnlm.errors import RnnlmError
from rnnlm.neural import footprint
from rnnlm.neural.footprint import available_bytes, bytes_per_parameter, check_fits, parameter_count
from rnnlm.neural.models import build_model

MODEL = {"kind": "gru", "hidden": 256, "num_layers": 1, "dropout": 0.2, "embed": 32,
         "tie_weights": False, "context": 8}
GiB = 2**30


@pytest.mark.parametrize("kind", ["scratch", "rnn", "gru", "lstm", "mlp"])
def test_the_count_on_the_meta_device_is_the_real_networks(kind: str) -> None:
    model = {**MODEL, "kind": kind, "hidden": 24}
    real = build_model(vocab_size=30, **model)
    assert parameter_count(30, model) == sum(p.numel() for p in real.parameters())


@pytest.mark.parametrize(("optimizer", "momentum"),
                         [("adam", 0.0), ("adamw", 0.0), ("sgd", 0.9), ("sgd", 0.0)])
def test_the_bytes_per_parameter_are_what_the_optimizer_really_keeps(optimizer: str,
                                                                      momentum: float) -> None:
    network = build_model(vocab_size=30, **{**MODEL, "hidden": 24})
    options = {"momentum": momentum} if optimizer == "sgd" else {}
    optim = getattr(torch.optim, {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD"}[optimizer])(
        network.parameters(), lr=0.1, **options)
    for p in network.parameters():
        p.grad = torch.ones_like(p)
    optim.step()  # creates the optimizer's state
    tensors = [*network.parameters(), *(p.grad for p in network.parameters())]
    # Per-parameter state; Adam's `step` counter is a scalar, not counted.
    tensors += [t for state in optim.state.values() for t in state.values()
                if isinstance(t, torch.Tensor) and t.dim()]
    held = sum(t.numel() * t.element_size() for t in tensors)
    count = sum(p.numel() for p in network.parameters())
    assert held == count * bytes_per_parameter(optimizer, momentum)


def test_a_network_over_the_available_memory_is_refused_naming_model_hidden() -> None:
    need = parameter_count(28, MODEL) * bytes_per_parameter("adam")
    check_fits(28, MODEL, "adam", available=need)  # exactly enough
    with pytest.raises(RnnlmError, match=r"^model\.hidden = 256 \(model\.kind = gru, .* 16 bytes "
                       r"a parameter; .* more than the .* GiB of memory available; lower "
                       r"model\.hidden in params\.yaml$"):
        check_fits(28, MODEL, "adam", available=need - 1)
    check_fits(28, MODEL, "sgd", available=need // 2)  # plain SGD keeps no state


def test_the_projects_default_network_fits_in_one_gib() -> None:
    params = params_with()
    for vocab_size in (28, 30_000):  # the book's characters; a word-level vocabulary
        check_fits(vocab_size, params.model.model_dump(), params.train.optimizer,
                   params.train.momentum, available=GiB)


def test_available_memory_is_memavailable_capped_by_the_containers_limit(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683784 kB\nMemFree:  1000 kB\n"
                       "MemAvailable:   22962264 kB\n")
    cgroup = tmp_path / "cgroup"
    assert available_bytes(meminfo, cgroup) == 22962264 * 1024  # no cgroup files
    cgroup.mkdir()
    (cgroup / "memory.max").write_text("max\n")  # v2, no limit
    assert available_bytes(meminfo, cgroup) == 22962264 * 1024
    (cgroup / "memory.max").write_text(f"{4 * GiB}\n")  # docker run --memory 4g
    assert available_bytes(meminfo, cgroup) == 4 * GiB
    (cgroup / "memory.max").unlink()
    (cgroup / "memory").mkdir()
    (cgroup / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1
    assert available_bytes(meminfo, cgroup) == 22962264 * 1024
    (cgroup / "memory" / "memory.limit_in_bytes").write_text(f"{2 * GiB}\n")
    assert available_bytes(meminfo, cgroup) == 2 * GiB
    assert 0 < available_bytes() <= footprint.os.sysconf("SC_PHYS_PAGES") * footprint.os.sysconf(
        "SC_PAGE_SIZE")  # this machine's


def test_the_train_stage_refuses_hidden_100000_at_once_with_exit_2(
        tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(footprint, "available_bytes", lambda: 64 * GiB)  # whatever this machine
    params = params_with(model={"hidden": 100_000}, train={"accelerator": "cpu", "devices": 1},
                         partition={"batch_size": 4, "num_steps": 10})
    prepare_ids(TEXT * 30, params)
    monkeypatch.setattr(_stage, "load_params", lambda: params)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was built")

    monkeypatch.setattr(pipeline.train, "LanguageModelTask", no_network)
    with pytest.raises(SystemExit) as stopped:
        run_stage("train", train_stage)
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error in stage train: model.hidden = 100,000 (model.kind = gru, "
                           "model.num_layers = 1, ")
    assert " parameters: training it needs at least 447.2 GiB (float32 weights, " in line
    assert "more than the 64.0 GiB of memory available; lower model.hidden in params.yaml" in line
    assert not (tmp_path / layout.RNN_DIR).exists()


def test_the_default_size_passes_the_check_in_the_train_stage(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(footprint, "available_bytes", lambda: GiB)
    params = params_with(train={"accelerator": "cpu", "devices": 1},
                         partition={"batch_size": 4, "num_steps": 10})
    prepare_ids(TEXT * 30, params)
    built = []

    def stop_after_the_check(*args: object, **kwargs: object) -> None:
        built.append(args)
        raise RnnlmError("the check let it through")

    monkeypatch.setattr(pipeline.train, "LanguageModelTask", stop_after_the_check)
    with pytest.raises(RnnlmError, match="the check let it through"):
        train_stage(params)
    assert len(built) == 1
