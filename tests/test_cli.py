"""The `rnnlm` command: every subcommand answers --help under its own name."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlm.cli import COMMANDS

RNNLM = shutil.which("rnnlm", path=str(Path(sys.executable).parent))


def rnnlm(*args: str) -> subprocess.CompletedProcess[str]:
    assert RNNLM is not None, "the rnnlm script is not installed beside this Python"
    return subprocess.run([RNNLM, *args], capture_output=True, text=True, timeout=120)


def test_rnnlm_lists_its_commands() -> None:
    result = rnnlm("--help")
    assert result.returncode == 0
    for name in COMMANDS:
        assert f"\n  {name} " in result.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_has_help_under_its_name(name: str) -> None:
    result = rnnlm(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: rnnlm {name} ")


def test_an_unknown_command_is_refused_with_the_list() -> None:
    result = rnnlm("trian")
    assert result.returncode == 2
    assert "unknown command 'trian'" in result.stderr and "generate" in result.stderr
