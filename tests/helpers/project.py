"""The committed project, as tests must see it: never the workspace's state.

A `dvc exp run` (or `dvc exp apply`, or an edit in progress) leaves its parameters in the
workspace's params.yaml, and the workspace's outputs, dvc.lock and MLflow store change with every
`dvc repro`. Tests read params.yaml as committed at HEAD, and build whatever else they need in a
temporary directory.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

from rnnlm.settings import Params, parse_params

ROOT = Path(__file__).resolve().parents[2]
# The corpus for offline use, beside the checkout (absent elsewhere: tests then skip or make one).
SHARED_CORPUS = ROOT.parent / "shared" / "data" / "timemachine.txt"
# Variables a stage reads that a test's environment must not pass on (DVC and MLflow set them).
STAGE_ENV = ("MLFLOW_EXPERIMENT_NAME", "DVC_ROOT", "DVC_EXP_NAME", "DVC_STAGE")


@functools.cache
def committed_text(path: str) -> str:
    """The file at `path` (relative to the repository root) as committed at HEAD.

    Outside a git checkout (an unpacked source archive) there is no workspace state to avoid:
    the file as it is."""
    try:
        return subprocess.run(["git", "-C", str(ROOT), "show", f"HEAD:{path}"], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        if (ROOT / ".git").exists():
            raise  # a checkout whose HEAD lacks the file: a real problem, not a fallback
        return (ROOT / path).read_text(encoding="utf-8")


@functools.cache
def _committed_params() -> dict[str, Any]:
    return yaml.safe_load(committed_text("params.yaml"))


def committed_params(**sections: dict[str, object]) -> dict[str, Any]:
    """params.yaml as committed (a fresh copy), each named section updated with its values."""
    raw = copy.deepcopy(_committed_params())
    for name, values in sections.items():
        raw[name] = {**raw[name], **values}
    return raw


def params_with(**sections: dict[str, object]) -> Params:
    """The committed params, validated, with the given section values."""
    return parse_params(committed_params(**sections))


def write_params(where: Path, raw: dict[str, Any]) -> Path:
    """`raw` as `where`/params.yaml, for a stage run as a process there."""
    path = where / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def files(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (hidden ones too) and its bytes."""
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}
