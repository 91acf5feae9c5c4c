"""Fixtures shared by several test modules; the helpers they use are in the `helpers` package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.project import STAGE_ENV
from helpers.servers import free_port, wait_until_healthy
from helpers.stages import SteadyMachine
from hypothesis import settings

# No per-example deadline (Hypothesis's default is 200 ms): on a loaded machine an example may
# take longer, and how long it takes is not what these tests check.
settings.register_profile("rnnlm", deadline=None)
settings.load_profile("rnnlm")


@pytest.fixture(autouse=True)
def steady_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A training with `train.threads: auto` takes the cores other processes leave free
    (rnnlm.neural.threads), and a small network's digits change with its thread count: so that
    no test's numbers (nor its time) depend on what else the machine runs, in-process trainings
    see every core busy and take one thread. test_threads drives the rule with loads of its
    own. (Test modules that train import rnnlm.neural.threads when collected; a fixture of a
    wider scope that trains puts SteadyMachine in place itself.)"""
    threads = sys.modules.get("rnnlm.neural.threads")
    if threads is not None:
        monkeypatch.setattr(threads, "CpuMeter", SteadyMachine)


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


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where the ngram, train and evaluate stages ran once (a tiny GRU), into a
    store of its own, `first.db`: its files are what the store sync records from."""
    from helpers.stages import TEXT, prepare_ids, tiny

    from pipeline.evaluate import evaluate_stage
    from pipeline.ngram import ngram_stage
    from pipeline.train import train_stage
    from rnnlm.neural import threads

    work = tmp_path_factory.mktemp("workspace")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(threads, "CpuMeter", SteadyMachine)
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


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite MLflow store with MLflow's schema and nothing else, made once: a copy of it is a
    new, empty store without the seconds of schema migration each new file costs."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates and migrates the schema
    return path


@pytest.fixture
def store(workspace: Path, empty_store: Path, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> str:
    """The workspace as the current directory, with a new, empty SQLite store."""
    monkeypatch.chdir(workspace)
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
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
    `dvc` in it (see helpers.dvc_project)."""
    from helpers.dvc_project import make_repo

    return make_repo(tmp_path)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real `mlflow server` on 127.0.0.1 (one worker, no job runner) with a store in
    `tmp_path/server`: its URL and that folder."""
    port = free_port()
    store = tmp_path / "server"
    store.mkdir()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mlflow = Path(sys.executable).parent / "mlflow"
    process = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--artifacts-destination", str(store / "artifacts")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_healthy(url, seconds=60):
            raise RuntimeError("mlflow server did not answer /health within 60 s")
        yield url, store
    finally:
        process.terminate()
        process.wait(timeout=30)
