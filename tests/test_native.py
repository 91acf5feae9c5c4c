"""Building and loading the compiled step kernels, and the clean fallback where they cannot be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = ("import warnings; warnings.simplefilter('ignore');"
         "from rnnlm.neural.native import library as l;"
         "print(l.kernels('f32') is not None, l.unavailable_reason(), sep='|')")


def probe(tmp_path: Path, **env: str) -> tuple[bool, str]:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          check=True, env={**os.environ, "RNNLM_NATIVE_CACHE": str(tmp_path),
                                           **env})
    available, reason = done.stdout.strip().split("|")
    return available == "True", reason


def test_builds_once_into_the_cache_and_loads(tmp_path: Path) -> None:
    assert probe(tmp_path) == (True, "None")
    built = list(tmp_path.glob("steps-*.so"))
    assert len(built) == 1 and not list(tmp_path.glob(".steps-*"))  # no partial file left
    stamp = built[0].stat().st_mtime_ns
    assert probe(tmp_path) == (True, "None")
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


def test_without_a_compiler_training_falls_back_with_the_reason(tmp_path: Path) -> None:
    available, reason = probe(tmp_path, CXX=str(tmp_path / "no-such-compiler"))
    assert not available and "no-such-compiler --version failed" in reason
    assert not list(tmp_path.iterdir())


def test_a_failing_build_is_reported_and_leaves_nothing(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "g++"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo fake 1.0 && exit 0\n"
                    "echo 'fatal: no room' >&2; exit 1\n")
    fake.chmod(0o755)
    cache = tmp_path / "cache"
    available, reason = probe(cache, CXX=str(fake))
    assert not available and "could not build steps.cpp" in reason and "no room" in reason
    assert not [p for p in cache.iterdir() if p.suffix == ".so"]


def test_rnnlm_native_0_asks_for_the_torch_operations_path(tmp_path: Path) -> None:
    assert probe(tmp_path, RNNLM_NATIVE="0") == (False, "RNNLM_NATIVE=0")


def test_the_install_step_reports_and_never_fails(tmp_path: Path) -> None:
    env = {**os.environ, "RNNLM_NATIVE_CACHE": str(tmp_path), "CXX": "/nonexistent/c++"}
    done = subprocess.run([sys.executable, "-m", "rnnlm.neural.native.library"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0
    assert "compiled recurrences unavailable" in done.stderr


@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_float32_training_steps_match_the_fallback(kind: str, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    """The compiled and the PyTorch-operations paths agree in float32 at training sizes
    (to rounding: the kernels evaluate tanh and sigmoid through exp)."""
    import torch

    from rnnlm.neural import bptt
    from rnnlm.neural.models import RecurrentLM

    def step() -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = RecurrentLM(kind, 28, 64)  # type: ignore[arg-type]
        x = torch.randint(0, 28, (8, 20))
        logits, _ = model(x, model.initial_state(8))
        torch.nn.functional.cross_entropy(logits.reshape(-1, 28), x.reshape(-1)).backward()
        return [logits.detach(), *(p.grad for p in model.parameters() if p.grad is not None)]

    compiled = step()
    monkeypatch.setattr(bptt, "_kernels", lambda *tensors: None)
    for mine, theirs in zip(compiled, step(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["rnn", "gru"])
def test_huge_pre_activations_saturate_as_torch_nn_does(kind: str) -> None:
    """A diverging training drives pre-activations to 1e9 and beyond: tanh and sigmoid must
    saturate (the exp inside them overflows to inf), never turn to NaN."""
    import torch
    import torch.nn.functional as F

    from rnnlm.neural.models import RecurrentLM

    torch.manual_seed(0)
    model = RecurrentLM(kind, 11, 16)  # type: ignore[arg-type]
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.mul_(1e9)
    x, h0 = torch.randint(0, 11, (3, 7)), torch.randn(1, 3, 16)
    ours, ours_h = model(x, h0)
    out, theirs_h = model.rnn(F.one_hot(x.t(), 11).float(), h0)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours_h, theirs_h)
    torch.testing.assert_close(ours, model.decoder(out).transpose(0, 1))
