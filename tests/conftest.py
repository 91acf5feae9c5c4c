"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite MLflow store for the session: a new one costs seconds of schema migration."""
    return tmp_path_factory.mktemp("mlflow") / "mlflow.db"


@pytest.fixture
def mlflow_store(mlflow_db: Path, monkeypatch: pytest.MonkeyPatch, request) -> str:
    """MLFLOW_TRACKING_URI pointing at the session store, in an experiment of this test's own."""
    uri = f"sqlite:///{mlflow_db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", request.node.name)
    for name in ("DVC_ROOT", "DVC_EXP_NAME", "DVC_STAGE"):
        monkeypatch.delenv(name, raising=False)
    return uri



STAGE_ENV = ("MLFLOW_EXPERIMENT_NAME", "DVC_ROOT", "DVC_EXP_NAME", "DVC_STAGE")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where the ngram, train and evaluate stages ran once (a tiny GRU), into a
    store of its own, `first.db`: its files are what the store sync records from."""
    from test_serving import tiny
    from test_stages import TEXT, prepare_ids

    from pipeline.evaluate import evaluate_stage
    from pipeline.ngram import ngram_stage
    from pipeline.train import train_stage

    work = tmp_path_factory.mktemp("workspace")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'first.db'}")
        for name in STAGE_ENV:
            patch.delenv(name, raising=False)
        params = tiny()
        prepare_ids(TEXT * 30, params)
        ngram_stage(params)
        train_stage(params)
        evaluate_stage(params)
    return work


@pytest.fixture
def store(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The workspace as the current directory, with a new, empty SQLite store."""
    monkeypatch.chdir(workspace)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in STAGE_ENV:
        monkeypatch.delenv(name, raising=False)
    return uri


class Tmpfs:
    """Small tmpfs mounts: a real disk that fills up, or turns read-only."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def mount(self, path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                 str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        self.mounted.append(path)
        return path

    def read_only(self, path: Path, read_only: bool = True) -> None:
        mode = "ro" if read_only else "rw"
        subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)

    def fill(self, path: Path, leave: int) -> Path:
        """Take all the free space of the mount at `path` but `leave` bytes."""
        stat = os.statvfs(path)
        filler = path / "filler"
        with filler.open("wb") as f:
            f.write(b"\0" * max(stat.f_bavail * stat.f_frsize - leave, 0))
        return filler

    def unmount_all(self) -> None:
        for path in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def tmpfs() -> Iterator[Tmpfs]:
    """Mounts unmounted after the test; skipped where this process may not mount (not root, a
    container without the capability)."""
    mounts = Tmpfs()
    yield mounts
    mounts.unmount_all()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The project's pipeline in a temporary git + DVC repository, and the environment to run
    `dvc` in it (see dvc_project)."""
    from dvc_project import make_repo

    return make_repo(tmp_path)
