"""The team stack of `make team-up` (rnnlm.team), run for real on 127.0.0.1: PostgreSQL, the S3
emulator and an MLflow server with basic-auth; the project's stages, `dvc push`/`dvc pull` and
`make repro` against it."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.project import files
from helpers.stages import tiny_params

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
MLFLOW_CLIENT = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
STAGE_ENV = ("MLFLOW_EXPERIMENT_NAME", "DVC_ROOT", "DVC_EXP_NAME", "DVC_STAGE")

pytestmark = pytest.mark.slow


def python_env(**extra: str) -> dict[str, str]:
    """This interpreter's environment with the worktree's code first and no store of its own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "AWS_")) and k not in STAGE_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src")])
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return {**env, **extra}


def exports(text: str) -> dict[str, str]:
    """The `export NAME=value` lines of `text`, each checked to be one."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and all(line.startswith("export ") for line in lines), text
    return dict(shlex.split(line[len("export "):])[0].split("=", 1) for line in lines)


def team(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rnnlm.cli", "team", *args], cwd=cwd,
                          env=python_env(), capture_output=True, text=True, timeout=300)


def stack_folder() -> Path:
    """In /tmp, searchable by others: PostgreSQL runs as its own user under root and must reach
    its cluster (pytest's own temporary folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="rnnlm-team-"))
    folder.chmod(0o755)
    return folder / "stack"


def live(pids: list[int]) -> list[int]:
    from rnnlm.team.processes import alive, group

    return [pid for pid in pids if alive(pid) or group(pid)]


@dataclass
class Team:
    folder: Path
    user: dict[str, str]  # the team user's exports
    admin: dict[str, str]

    def mlflow_env(self, who: str = "user") -> dict[str, str]:
        """Only what an MLflow client needs: the address and a user's credentials."""
        source = self.admin if who == "admin" else self.user
        return {name: source[name] for name in MLFLOW_CLIENT}

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.user["AWS_ENDPOINT_URL_S3"],
                            aws_access_key_id=self.user["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.user["AWS_SECRET_ACCESS_KEY"],
                            region_name=self.user["AWS_DEFAULT_REGION"])

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3().list_objects_v2(Bucket="rnnlm-team", Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def stack() -> Iterator[Team]:
    """One stack for the module, started and stopped by `rnnlm team up` / `down`."""
    folder = stack_folder()
    up = team("up", "--dir", str(folder), "--port", "0")
    assert up.returncode == 0, up.stderr
    admin = team("env", "--dir", str(folder), "--admin")
    assert admin.returncode == 0, admin.stderr
    pids = list(json.loads((folder / "stack.json").read_text())["pids"].values())
    try:
        yield Team(folder, exports(up.stdout), exports(admin.stdout))
    finally:
        down = team("down", "--dir", str(folder))
        shutil.rmtree(folder.parent, ignore_errors=True)
    assert down.returncode == 0, down.stderr
    assert not live(pids)


def test_make_team_up_starts_each_service_and_make_team_down_leaves_no_process() -> None:
    folder = stack_folder()
    # The targets as written, with this interpreter's environment as the venv (already
    # installed: -o keeps make from installing into it).
    make = ["make", "-s", f"VENV={VENV}", "-o", f"{VENV}/.installed",
            "-o", f"{VENV}/.installed-team", f"TEAM_DIR={folder}", "TEAM_PORT=0"]
    state: dict = {"pids": {}}
    try:
        up = subprocess.run([*make, "team-up"], cwd=ROOT, env=python_env(),
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        env = exports(up.stdout)  # stdout is nothing but the export lines
        assert set(env) == {*MLFLOW_CLIENT, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                            "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"}
        assert env["MLFLOW_TRACKING_URI"].startswith("http://127.0.0.1:")
        state = json.loads((folder / "stack.json").read_text())
        assert oct((folder / "stack.json").stat().st_mode & 0o777) == "0o600"
        # PostgreSQL: the two databases, on loopback, with a password.
        import psycopg2

        for database in ("mlflow", "mlflow_auth"):
            psycopg2.connect(host="127.0.0.1", port=state["ports"]["postgres"], user="mlflow",
                             password=state["secrets"]["database"], dbname=database).close()
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host="127.0.0.1", port=state["ports"]["postgres"], user="mlflow",
                             password="wrong", dbname="mlflow")
        # The bucket, with the exported settings.
        stack = Team(folder, env, env)
        assert stack.s3().head_bucket(Bucket="rnnlm-team")["ResponseMetadata"][
            "HTTPStatusCode"] == 200
        # MLflow: healthy, refusing anonymous requests, answering the team user.
        url = env["MLFLOW_TRACKING_URI"]
        with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
            assert response.status == 200
        experiment = f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=rnnlm"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(experiment, timeout=10)
        assert refused.value.code == 401
        from mlflow import MlflowClient

        os.environ.update(stack.mlflow_env())
        try:
            assert MlflowClient(url).get_experiment_by_name("rnnlm") is not None
        finally:
            for name in MLFLOW_CLIENT:
                os.environ.pop(name, None)
        again = subprocess.run([*make, "team-up"], cwd=ROOT, env=python_env(),
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and exports(again.stdout) == env  # already running
        assert "already running" in again.stderr
    finally:
        down = subprocess.run([*make, "team-down"], cwd=ROOT, env=python_env(),
                              capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stderr
    assert not live(list(state["pids"].values()))
    assert sorted(p.name for p in folder.iterdir()) == ["logs"]
    assert {"mlflow.log", "s3.log", "postgres.log"} <= {p.name for p in (folder / "logs").iterdir()}
    again = team("down", "--dir", str(folder))
    assert again.returncode == 0 and "nothing to stop" in again.stderr
    env_after = team("env", "--dir", str(folder))
    assert env_after.returncode == 2 and env_after.stderr.count("\n") == 1
    assert "make team-up" in env_after.stderr
    shutil.rmtree(folder.parent)


def test_a_stack_that_fails_to_start_stops_what_it_started(monkeypatch) -> None:
    """The MLflow server never answers: `up` says so, stops PostgreSQL, the emulator and the
    server, and keeps only the logs."""
    from rnnlm.errors import RnnlmError
    from rnnlm.team import processes, stack
    from rnnlm.team.tracking_server import TrackingServer

    started: list[int] = []
    start = processes.start

    def recorded(*args, **kwargs) -> int:
        started.append(start(*args, **kwargs))
        return started[-1]

    def never_answers(self, pid: int, log: Path) -> None:
        raise RnnlmError("the MLflow server did not answer within 180 s")

    monkeypatch.setattr(processes, "start", recorded)
    monkeypatch.setattr(TrackingServer, "wait", never_answers)
    folder = stack_folder()
    try:
        with pytest.raises(RnnlmError, match="did not answer"):
            stack.up(folder, port=0)
        assert len(started) == 2  # the emulator and the server (pg_ctl starts PostgreSQL)
        assert not live(started)
        assert sorted(p.name for p in folder.iterdir()) == ["logs"]
        assert "database system is shut down" in (folder / "logs/postgres.log").read_text()
    finally:
        stack.down(folder)
        shutil.rmtree(folder.parent)


@pytest.fixture(scope="module")
def trained(stack: Team, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny experiment (the ngram, train and evaluate stages, in this process) recorded on the
    stack as the team user, whose environment names nothing but the server and its credentials:
    no S3 setting, no local store."""
    from pipeline.evaluate import evaluate_stage
    from pipeline.ngram import ngram_stage
    from pipeline.train import train_stage
    from rnnlm.settings import load_params

    work = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        for name in os.environ:
            if name.startswith(("MLFLOW_", "AWS_")) or name in STAGE_ENV:
                patch.delenv(name)
        for name, value in stack.mlflow_env().items():
            patch.setenv(name, value)
        tiny_params(work, epochs=2)
        params = load_params()
        ngram_stage(params)
        train_stage(params)
        evaluate_stage(params)
    return work


def test_a_tiny_experiment_lands_on_the_server_and_nothing_in_the_local_store(
        stack: Team, trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    for name, value in stack.mlflow_env().items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(stack.user["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("rnnlm")
    assert experiment is not None and experiment.artifact_location.startswith("mlflow-artifacts:")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["model_kind"] for r in runs) == ["gru", "ngram"]
    assert all(r.info.status == "FINISHED" and "test_ppl" in r.data.metrics for r in runs)
    [gru] = [r for r in runs if r.data.tags["model_kind"] == "gru"]
    assert [m.step for m in client.get_metric_history(gru.info.run_id, "val_ppl")] == [1, 2]
    # Its artifacts and its logged model are in the bucket, under the server's prefix.
    keys = stack.keys("mlflow/")
    names = {key.rsplit("/", 1)[-1] for key in keys}
    assert {"train.json", "samples.md", "best.ckpt", "model.json", "vocab.parquet",
            "MLmodel"} <= names
    assert any(gru.info.run_id in key for key in keys)
    # One registry version per model, each the champion.
    for kind in ("gru", "ngram"):
        [version] = client.search_model_versions(f"name = 'rnnlm-{kind}'")
        assert client.get_model_version_by_alias(f"rnnlm-{kind}", "champion").version == (
            version.version)
        assert version.run_id in {r.info.run_id for r in runs}
    # Nothing in a local store.
    local = {"mlflow.db", "mlruns", "mlartifacts"}
    assert not local & {p.name for p in trained.rglob("*")}
    assert not local & {p.name for p in Path.cwd().iterdir()} - {
        p.name for p in ROOT.iterdir()}


LOAD_CHAMPION = """
import json, sys
import mlflow, numpy as np, pandas as pd
val = sys.argv[1]
model = mlflow.pyfunc.load_model("models:/rnnlm-gru@champion")
scored = model.predict(pd.DataFrame({"text": [val]}))
made = model.predict(pd.DataFrame({"prefix": ["the time"]}), params={"tokens": 20, "seed": 1})
print(json.dumps({"perplexity": float(scored["perplexity"][0]), "text": made["text"][0]}))
"""


def test_the_champion_loads_in_a_fresh_process_knowing_only_the_server_and_credentials(
        stack: Team, trained: Path, tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd
    from helpers.metrics import model_metrics

    vocab = pd.read_parquet(trained / "data/processed/vocab.parquet")["token"].to_numpy()
    val = "".join(vocab[np.load(trained / "data/processed/ids/val.npy")])
    # The interpreter, a home and the server: no repository, no S3 setting, no PYTHONPATH.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **stack.mlflow_env()}
    result = subprocess.run([sys.executable, "-c", LOAD_CHAMPION, val], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["perplexity"] == pytest.approx(model_metrics(trained)["rnn"]["val_ppl"],
                                                 rel=1e-6)
    assert answer["text"].startswith("the time") and len(answer["text"]) > len("the time")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []


def train_in_a_copy(trained: Path, where: Path, env: dict[str, str]
                    ) -> tuple[subprocess.CompletedProcess[str], dict[str, bytes]]:
    """The train stage (as DVC runs it) in a copy of the trained project; its result and
    models/ before it ran."""
    work = where / "work"
    shutil.copytree(trained, work)
    before = files(work / "models")
    result = subprocess.run([sys.executable, "-m", "pipeline.train"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=600)
    return result, before


def one_error_line(stderr: str, stage: str) -> str:
    assert "Traceback" not in stderr, stderr
    [line] = [x for x in stderr.splitlines() if x.startswith(("error", "Error"))]
    assert line.startswith(f"error in stage {stage}: "), stderr
    return line


def test_a_request_without_credentials_is_refused_and_the_stage_says_so_in_one_line(
        stack: Team, trained: Path, tmp_path: Path) -> None:
    env = python_env(MLFLOW_TRACKING_URI=stack.user["MLFLOW_TRACKING_URI"])
    result, before = train_in_a_copy(trained, tmp_path, env)
    assert result.returncode == 2
    line = one_error_line(result.stderr, "train")
    assert "requires credentials (401" in line
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in line
    assert files(tmp_path / "work/models") == before


def test_a_read_only_users_training_fails_in_one_line_and_leaves_the_models_as_they_were(
        stack: Team, trained: Path, tmp_path: Path) -> None:
    from mlflow.server.auth.client import AuthServiceClient

    url = stack.user["MLFLOW_TRACKING_URI"]
    os.environ.update(stack.mlflow_env("admin"))
    try:
        AuthServiceClient(url).create_user("reader", "a-reader-password")
    finally:
        for name in MLFLOW_CLIENT:
            os.environ.pop(name, None)
    env = python_env(MLFLOW_TRACKING_URI=url, MLFLOW_TRACKING_USERNAME="reader",
                     MLFLOW_TRACKING_PASSWORD="a-reader-password")
    result, before = train_in_a_copy(trained, tmp_path, env)
    assert result.returncode == 2
    line = one_error_line(result.stderr, "train")
    assert "denied user 'reader'" in line and "(403 on /api/2.0/mlflow/runs/create)" in line
    assert "EDIT on the experiments 'rnnlm' and 'rnnlm-sequence'" in line
    assert "registered model rnnlm-*" in line
    # Nothing set aside, nothing changed: models/ exactly as before, hidden files included.
    assert files(tmp_path / "work/models") == before
    # A wrong password is refused as such.
    env["MLFLOW_TRACKING_PASSWORD"] = "not-the-password"
    result, _ = train_in_a_copy(trained, tmp_path / "again", env)
    assert result.returncode == 2
    assert "refused the password of user 'reader' (401" in one_error_line(result.stderr, "train")


TEAMS_PAGE = ROOT / "docs" / "teams.md"
FENCE = re.compile(r"^```(\w*)\s*$")


def blocks(heading: str, language: str = "bash") -> list[str]:
    """The fenced blocks of `language` in the section of docs/teams.md under `heading`, as
    written."""
    found: list[str] = []
    section, current = None, None
    for line in TEAMS_PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and current is None:
            section = line.lstrip("#").strip()
            continue
        fence = FENCE.match(line)
        if fence:
            if current is None:
                current = [] if fence.group(1) == language and section == heading else None
                if current is None and fence.group(1):
                    current = ["<skip>"]
            else:
                if current[:1] != ["<skip>"]:
                    found.append("\n".join(current))
                current = None
            continue
        if current is not None:
            current.append(line)
    return found


# `make` as written, with this interpreter's environment as the venv: installed already, so -o
# keeps make from installing into it (nothing else differs from a reader's shell).
MAKE_WITH_THIS_VENV = """set -euo pipefail
make() { command make VENV="$TEST_VENV" -o "$TEST_VENV/.installed" \
    -o "$TEST_VENV/.installed-team" "$@"; }
"""


def run_shown(block: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", MAKE_WITH_THIS_VENV + block], cwd=cwd,
                          env={**env, "TEST_VENV": str(VENV)}, capture_output=True, text=True,
                          timeout=1200)


@pytest.fixture(scope="module")
def walkthrough() -> Iterator[tuple[Path, dict[str, str], Team]]:
    """docs/teams.md's "Try it on one machine", run as written in a copy of the project: its
    own stack (`make team-up`, in the repository's .team/), the pipeline reproduced against it,
    the outputs pushed to the bucket; at the end, the page's `make team-down`. The repository,
    a teammate's environment (the exports of `rnnlm team env`) and the stack."""
    from helpers.dvc_project import make_repo, run

    parent = stack_folder().parent  # PostgreSQL's user reaches the repository's .team/
    repo, env = make_repo(parent)
    env = {**{k: v for k, v in env.items() if not k.startswith(("MLFLOW_", "AWS_"))},
           "TEAM_PORT": "0"}  # any free ports: the page's default 5050 may be in use here
    shutil.copy(ROOT / "Makefile", repo / "Makefile")
    run(["git", "add", "Makefile"], repo, env)
    run(["git", "commit", "-qm", "Makefile"], repo, env)
    try_it, stop_it = blocks("Try it on one machine")
    pids: list[int] = []
    try:
        shown = run_shown(try_it, repo, env)
        assert shown.returncode == 0, shown.stdout + shown.stderr
        pids = list(json.loads((repo / ".team/stack.json").read_text())["pids"].values())
        run(["git", "add", "-A"], repo, env)
        run(["git", "commit", "-qm", "results"], repo, env)
        user = exports(run(["rnnlm", "team", "env"], repo, env).stdout)
        admin = exports(run(["rnnlm", "team", "env", "--admin"], repo, env).stdout)
        yield repo, {**env, **user}, Team(repo / ".team", user, admin)
    finally:
        stopped = run_shown(stop_it, repo, env)
        shutil.rmtree(parent, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    assert not live(pids)


def make_repro(clone: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = run_shown("make repro", clone, env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_a_fresh_clone_pulls_from_the_bucket_trains_nothing_and_finds_the_runs_on_the_server(
        walkthrough: tuple[Path, dict[str, str], Team], tmp_path: Path) -> None:
    from helpers.dvc_project import run, stages_run
    from mlflow import MlflowClient

    repo, env, stack = walkthrough
    assert any(key.startswith("dvc/files/md5/") for key in stack.keys("dvc/"))
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    run(["dvc", "pull"], clone, env)
    repro = make_repro(clone, env)
    assert stages_run(repro.stdout) == []  # nothing trained, nothing scored again
    # The store sync finds each model's run on the server, recorded there by the first repo.
    assert repro.stdout.count(" in line;") == 2, repro.stdout
    assert "rnnlm-gru version 1 (champion)" in repro.stdout
    assert "rnnlm-ngram version 1 (champion)" in repro.stdout
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone, env).stdout
    runs = run([sys.executable, "-m", "rnnlm.cli", "runs"], clone, env).stdout
    assert "gru-16" in runs and "ngram" in runs, runs
    assert not (clone / "mlflow.db").exists() and not (clone / "mlartifacts").exists()
    os.environ.update(stack.mlflow_env())
    try:
        client = MlflowClient(stack.user["MLFLOW_TRACKING_URI"])
        experiment = client.get_experiment_by_name("rnnlm")
        assert experiment is not None
        found = client.search_runs([experiment.experiment_id])
    finally:
        for name in MLFLOW_CLIENT:
            os.environ.pop(name, None)
    assert sorted(r.data.tags["model_kind"] for r in found) == ["gru", "ngram"]


def test_two_clones_running_an_experiment_at_once_land_with_one_version_per_model(
        walkthrough: tuple[Path, dict[str, str], Team], tmp_path: Path) -> None:
    from helpers.dvc_project import run, stages_run
    from mlflow import MlflowClient

    repo, env, stack = walkthrough
    clones = [tmp_path / name for name in ("ada", "bob")]
    for clone in clones:
        run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
        run(["dvc", "pull"], clone, env)
    # The same experiment in both at the same moment: the same model, trained twice.
    experiment = ["dvc", "exp", "run", "-n", "narrow", "-S", "model.hidden=8",
                  "-S", "train.epochs=1"]
    started = [subprocess.Popen(experiment, cwd=clone, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for clone in clones]
    finished = [process.communicate(timeout=900) for process in started]
    for process, (out, err) in zip(started, finished, strict=True):
        assert process.returncode == 0, out + err
        assert stages_run(out) == ["train", "evaluate"]
    checksums = {json.loads((clone / "reports/train.json").read_text())["run"][
        "model_checksum"] for clone in clones}
    assert len(checksums) == 1  # the same model
    os.environ.update(stack.mlflow_env())
    try:
        client = MlflowClient(stack.user["MLFLOW_TRACKING_URI"])
        found = client.search_runs([client.get_experiment_by_name("rnnlm").experiment_id])
        narrow = [r for r in found if r.data.tags.get("dvc_exp_name") == "narrow"]
        versions = {kind: client.search_model_versions(f"name = 'rnnlm-{kind}'")
                    for kind in ("gru", "ngram")}
        champion = client.get_model_version_by_alias("rnnlm-gru", "champion")
    finally:
        for name in MLFLOW_CLIENT:
            os.environ.pop(name, None)
    # Both clones' runs landed, each finished ...
    trained = [r for r in narrow if r.data.tags["model_kind"] == "gru"]
    assert len(trained) == 2 and all(r.info.status == "FINISHED" for r in trained)
    assert all(r.data.params["hidden"] == "8" for r in trained)
    # An evaluate stage finds a model's run by the model's checksum and the DVC experiment's
    # name, the same in both clones: the scores go to the newest of the two equal runs.
    newest = max(trained, key=lambda r: r.info.start_time)
    assert "test_ppl" in newest.data.metrics
    # ... and the registry holds one version per distinct model: the first repo's two, and the
    # narrow GRU once, whichever clone registered it first.
    gru = {v.tags["model_checksum"]: v.version for v in versions["gru"]}
    assert len(versions["gru"]) == 2 and len(gru) == 2 and checksums <= set(gru)
    assert len(versions["ngram"]) == 1
    assert champion.tags["model_checksum"] in gru


def test_the_pages_users_and_permissions_let_a_new_user_write_runs_and_models(
        stack: Team, trained: Path) -> None:
    """docs/teams.md's admin snippet, run as written against the stack (only its server's
    address replaced): the user it creates may then do what the stages do."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    [snippet] = blocks("Users and permissions", "python")
    url = stack.user["MLFLOW_TRACKING_URI"]
    assert 'server = "http://mlflow-host:5000"' in snippet
    os.environ.update(stack.mlflow_env("admin"))
    try:
        exec(snippet.replace("http://mlflow-host:5000", url), {})
        from mlflow.server.auth.client import AuthServiceClient

        AuthServiceClient(url).create_user("carol", "another-long-password")  # no grant
    finally:
        for name in MLFLOW_CLIENT:
            os.environ.pop(name, None)
    for user, password, allowed in (("alice", "a-long-password", True),
                                    ("carol", "another-long-password", False)):
        os.environ.update({"MLFLOW_TRACKING_USERNAME": user,
                           "MLFLOW_TRACKING_PASSWORD": password})
        try:
            client = MlflowClient(url)
            # What opening a run needs (EDIT on its experiment), without leaving a run behind.
            for name in ("rnnlm", "rnnlm-sequence"):
                experiment_id = client.get_experiment_by_name(name).experiment_id
                if allowed:
                    client.set_experiment_tag(experiment_id, "checked_by", user)
                else:
                    with pytest.raises(MlflowException, match="403"):
                        client.set_experiment_tag(experiment_id, "checked_by", user)
            if allowed:
                client.set_registered_model_tag("rnnlm-gru", "checked_by", user)
            else:
                with pytest.raises(MlflowException, match="403"):
                    client.set_registered_model_tag("rnnlm-gru", "checked_by", user)
        finally:
            for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                os.environ.pop(name, None)


# Every command docs/teams.md shows in a bash block is run here as written (the walkthrough runs
# the blocks of "Try it on one machine"; the clone tests `dvc pull` and `make repro`), or needs
# what this machine lacks: other hosts (db, mlflow-host, minio.internal, a git server) or a
# bucket of another name.
RUN_ELSEWHERE_IN_THIS_MODULE = {"dvc pull", "dvc push", "make repro"}
NEEDS_OTHER_HOSTS = {
    "dvc remote add -d team s3://team-bucket/dvc",
    "dvc remote modify --local team endpointurl https://minio.internal:9000",
    "pip install -c constraints.txt -e '.[team]'",
    "createdb -h db -U postgres mlflow", "createdb -h db -U postgres mlflow_auth",
    "export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...",
    "export MLFLOW_S3_ENDPOINT_URL=https://minio.internal:9000",
    "export MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow/basic_auth.ini",
    "export MLFLOW_AUTH_ADMIN_PASSWORD=...", "export MLFLOW_FLASK_SERVER_SECRET_KEY=...",
    "mlflow server --app-name basic-auth --host 0.0.0.0 --port 5000 --allowed-hosts "
    "mlflow-host:5000 --backend-store-uri "
    "postgresql+psycopg2://mlflow:PASSWORD@db:5432/mlflow --artifacts-destination "
    "s3://team-bucket/mlflow",
    "export MLFLOW_TRACKING_URI=http://mlflow-host:5000",
    "export MLFLOW_TRACKING_USERNAME=alice MLFLOW_TRACKING_PASSWORD=...",
    "gto register rnn --version v1.0.0 && git push origin rnn@v1.0.0",
    "dvc artifacts get https://git.example/team/rnnlm.git rnn -o rnn-model",
}


def test_every_command_of_the_teams_page_runs_here_or_needs_other_hosts() -> None:
    from helpers.docs import bash_lines, normalised

    walked = {line for block in blocks("Try it on one machine")
              for line in bash_lines_of(block, bash_lines)}
    known = walked | {normalised(c) for c in RUN_ELSEWHERE_IN_THIS_MODULE | NEEDS_OTHER_HOSTS}
    shown = set(bash_lines(TEAMS_PAGE))
    assert shown - known == set(), "run these here, or list them as needing other hosts"
    assert {normalised(c) for c in NEEDS_OTHER_HOSTS} <= shown  # none stale


def bash_lines_of(block: str, bash_lines) -> list[str]:
    page = Path(tempfile.mkdtemp()) / "block.md"
    page.write_text(f"```bash\n{block}\n```\n")
    try:
        return bash_lines(page)
    finally:
        shutil.rmtree(page.parent)
