"""The fitted models as MLflow Models: logged by their stages, registered by evaluate, loaded in a
fresh process by `models:/...@champion`, and served by the real `mlflow models serve`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.metrics import model_metrics
from helpers.project import ROOT, committed_params, write_params
from helpers.servers import free_port
from helpers.stages import TEXT, SteadyMachine, prepare_ids, tiny
from mlflow import MlflowClient

from pipeline.evaluate import evaluate_stage
from pipeline.ngram import ngram_stage
from pipeline.train import train_stage
from rnnlm import layout
from rnnlm.errors import RnnlmError
from rnnlm.neural import threads
from rnnlm.ngram.store import load_ngram
from rnnlm.serving.budget import (
    CHARACTERS_VAR,
    NEW_TOKENS_VAR,
    REQUEST_OVER,
    ROWS_VAR,
    TIMEOUT_VAR,
    Limits,
)
from rnnlm.serving.language_model import LanguageModel
from rnnlm.serving.registry import CHAMPION
from rnnlm.serving.server import RequestGuard, max_body_bytes
from rnnlm.text.vocab import Vocab


class Project:
    """A directory where the ngram, train and evaluate stages ran, with its own MLflow store."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.uri = f"sqlite:///{work / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)

    def metrics(self) -> dict:
        return model_metrics(self.work)

    def split_text(self, split: str) -> str:
        """The split's characters, as the char-level stages cut them."""
        vocab = Vocab.load(self.work / layout.VOCAB)
        return "".join(vocab.decode(np.load(self.work / layout.ids_path(split))))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("MLFLOW_EXPERIMENT_NAME", "DVC_ROOT", "DVC_EXP_NAME")}
        return {**env, "MLFLOW_TRACKING_URI": self.uri, "PYTHONPATH": str(ROOT / "src"),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    work = tmp_path_factory.mktemp("served")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(threads, "CpuMeter", SteadyMachine)  # before the autouse fixture runs
        patch.chdir(work)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
        for name in ("MLFLOW_EXPERIMENT_NAME", "DVC_ROOT", "DVC_EXP_NAME", "DVC_STAGE"):
            patch.delenv(name, raising=False)
        params = tiny()
        prepare_ids(TEXT * 30, params)
        ngram_stage(params)
        train_stage(params)
        evaluate_stage(params)
        yield Project(work)


def test_each_fitted_model_is_a_pyfunc_mlflow_model_from_code(project) -> None:
    client = project.client
    experiment = client.get_experiment_by_name("rnnlm")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert {r.data.tags["model_kind"] for r in runs} == {"gru", "ngram"}
    for run in runs:  # the UI's Models column: the run's logged model
        [output] = run.outputs.model_outputs
        model = client.get_logged_model(output.model_id)
        assert model.name == "model" and model.source_run_id == run.info.run_id
        assert model.experiment_id == experiment.experiment_id
        files = Path(model.artifact_location.removeprefix("file://"))
        mlmodel = yaml.safe_load((files / "MLmodel").read_text())
        pyfunc = mlmodel["flavors"]["python_function"]
        # Models from code: the class is named by a file, never unpickled.
        assert pyfunc["model_code_path"].endswith("model_code.py")
        assert not list(files.rglob("*.pkl"))
        assert set(mlmodel["signature"]) >= {"inputs", "outputs", "params"}
        assert (files / "serving_input_example.json").is_file()
        assert (files / "code" / "rnnlm" / "serving" / "pyfunc.py").is_file()
        weights = list(files.rglob("*.ckpt"))
        assert [p.name for p in weights] == (["best.ckpt"] if run.data.tags["model_kind"] ==
                                             "gru" else [])


def test_evaluate_registers_each_model_with_its_figures_and_a_champion(project) -> None:
    metrics = project.metrics()
    for name, scored in (("rnnlm-gru", "rnn"), ("rnnlm-ngram", "ngram")):
        [version] = project.client.search_model_versions(f"name = '{name}'")
        champion = project.client.get_model_version_by_alias(name, CHAMPION)
        assert champion.version == version.version
        assert float(version.tags["test_ppl"]) == metrics[scored]["test_ppl"]
        assert float(version.tags["val_ppl"]) == metrics[scored]["val_ppl"]
        assert version.source.startswith("models:/m-")


FRESH_PROCESS = """
import json, sys
import mlflow
import pandas as pd
text = sys.stdin.read()
out = {}
for name in ("rnnlm-gru", "rnnlm-ngram"):
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    scored = model.predict(pd.DataFrame({"text": [text]}))
    drawn = [model.predict(pd.DataFrame({"prefix": ["the time"]}),
                           params={"tokens": 30, "seed": 7, "temperature": 0.8})
             for _ in range(2)]
    out[name] = {"ppl": float(scored["perplexity"][0]),
                 "bpc": float(scored["bits_per_character"][0]),
                 "text": [d["text"][0] for d in drawn]}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_a_fresh_process_loads_the_champions_scores_and_generates(project, tmp_path) -> None:
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS], cwd=tmp_path,
                            env=project.env(), input=project.split_text("test"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    metrics = project.metrics()
    for name, scored in (("rnnlm-gru", "rnn"), ("rnnlm-ngram", "ngram")):
        # The evaluate stage's figure on the same text, by the same protocol.
        assert out[name]["ppl"] == pytest.approx(metrics[scored]["test_ppl"], rel=1e-6)
        assert out[name]["bpc"] == pytest.approx(metrics[scored]["test_bpc"], rel=1e-6)
        first, again = out[name]["text"]
        assert first == again and first.startswith("the time") and len(first) == 8 + 30


def test_scoring_at_char_level_is_bits_per_character_log2_of_perplexity(project) -> None:
    model = LanguageModel.load(project.work / layout.RNN_DIR)
    score = model.score("the time traveller")
    assert len(score.tokens) == len(score.log_probs) == score.characters == 17
    assert score.perplexity == pytest.approx(np.exp(-np.mean(score.log_probs)), rel=1e-12)
    assert score.bits_per_character == pytest.approx(np.log2(score.perplexity), rel=1e-12)


def test_a_prefix_the_vocabulary_does_not_know_at_all_is_refused(project) -> None:
    ngram, vocab, text = load_ngram(project.work / layout.NGRAM_DIR)
    verbatim = LanguageModel("ngram", ngram, vocab, {**text, "clean": "none"})
    with pytest.raises(RnnlmError, match="none of the prefix's tokens is in the model's vocab"):
        verbatim.generate("你好", tokens=5)
    # One known character is enough: the unknown ones are <unk>, as in the training text.
    assert verbatim.generate("你t", tokens=5, seed=1).startswith("<unk>t")


def post(url: str, body: bytes | dict, timeout: float = 60) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/invocations", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:  # MLflow's 504 is plain text
            return error.code, {"message": text.decode()}


class Served:
    """`make serve`'s command on a free port, with MLflow's scoring server behind it."""

    def __init__(self, project: Project, *args: str, env: dict[str, str] | None = None) -> None:
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rnnlm.serving.serve", "--name", "rnnlm-gru", "--port",
             str(port), *args], cwd=project.work, env={**project.env(), **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server stopped: {self.process.stderr.read()}"
                                       ) from None
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("the server did not answer /health within 120 s")

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture
def server(project) -> Iterator[str]:
    served = Served(project)
    try:
        yield served.url
    finally:
        served.stop()


@pytest.mark.slow
def test_the_served_champion_scores_generates_and_refuses_bad_requests(project, server) -> None:
    status, body = post(server, {"dataframe_records": [{"text": project.split_text("test")}]})
    assert status == 200
    [scored] = body["predictions"]
    assert scored["perplexity"] == pytest.approx(project.metrics()["rnn"]["test_ppl"], rel=1e-6)
    assert len(scored["log_probs"]) == len(scored["tokens"]) == len(project.split_text("test")) - 1

    ask = {"dataframe_records": [{"prefix": "the time"}],
           "params": {"tokens": 40, "temperature": 0.8, "top_k": 5, "seed": 3}}
    first, again = post(server, ask), post(server, ask)
    assert first[0] == 200 and first == again
    assert first[1]["predictions"][0]["text"].startswith("the time")

    bad = {
        "has 0 token(s) after cleaning": {"dataframe_records": [{"text": ""}]},
        "no tokens left after cleaning": {"dataframe_records": [{"prefix": "你好"}]},
        "tokens must be a whole number >= 0, got -1": {
            "dataframe_records": [{"prefix": "the"}], "params": {"tokens": -1}},
        "a request needs a 'text' column": {"dataframe_records": [{"words": "the time"}]},
        "send one kind of request at a time": {
            "dataframe_records": [{"text": "the time", "prefix": "the"}]},
        "top_k must be >= 0": {"dataframe_records": [{"prefix": "the"}],
                               "params": {"top_k": -2}},
    }
    for message, request in bad.items():
        status, body = post(server, request)
        assert status == 400 and message in body["message"], (request, body)
    status, body = post(server, b"{not json")
    assert status == 400 and "valid JSON" in body["message"]
    # Still serving after every refusal.
    assert post(server, ask) == first


@pytest.mark.slow
def test_rerunning_an_experiment_adds_no_version_and_a_better_model_takes_the_alias(
        project, monkeypatch) -> None:
    monkeypatch.chdir(project.work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    train_stage(tiny())  # the same parameters: a new run, the same weights
    evaluate_stage(tiny())
    assert len(project.client.search_model_versions("name = 'rnnlm-gru'")) == 1
    train_stage(tiny(hidden=24))
    evaluate_stage(tiny(hidden=24))
    versions = project.client.search_model_versions("name = 'rnnlm-gru'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    best = min(versions, key=lambda v: float(v.tags["val_ppl"]))
    assert project.client.get_model_version_by_alias("rnnlm-gru", CHAMPION).version == (
        best.version)
    assert float(best.tags["val_ppl"]) == min(float(v.tags["val_ppl"]) for v in versions)


# --- many requests at once, and requests that would cost too much ---------------------------

def mixed_requests(project: Project) -> list[dict]:
    """Score and generate requests, seeded and greedy, each different."""
    text = project.split_text("val")
    asks: list[dict] = []
    for i in range(24):
        if i % 3 == 0:
            asks.append({"dataframe_records": [{"text": text[i : i + 200 + 10 * i]}]})
        else:
            asks.append({"dataframe_records": [{"prefix": ["the time", "a", "he"][i % 3]}],
                         "params": {"tokens": 60 + i, "seed": 7 + i % 2,
                                    "temperature": 0.0 if i % 4 == 1 else 1.0}})
    return asks


def in_process(model, ask: dict) -> str:
    import pandas as pd

    return json.dumps(model.predict(pd.DataFrame(ask["dataframe_records"]),
                                    params=ask.get("params")).to_dict(orient="records"))


def test_concurrent_calls_in_process_answer_what_each_alone_does(project, monkeypatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.uri)
    asks = mixed_requests(project)
    for name in ("rnnlm-gru", "rnnlm-ngram"):
        model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
        answer = functools.partial(in_process, model)
        alone = [answer(ask) for ask in asks]
        with ThreadPoolExecutor(16) as pool:
            for _ in range(2):
                assert list(pool.map(answer, asks * 2)) == alone * 2, name


@pytest.mark.slow
def test_concurrent_requests_to_the_server_answer_what_each_alone_does(project, server) -> None:
    asks = mixed_requests(project)
    alone = [post(server, ask) for ask in asks]
    assert all(status == 200 for status, _ in alone)
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda a: post(server, a), asks * 3))
    assert together == alone * 3


@pytest.mark.slow
def test_requests_over_a_limit_are_refused_at_once_naming_the_setting(project) -> None:
    served = Served(project, "--max-rows", "3", "--max-new-tokens", "500",
                    "--max-characters", "1000")
    try:
        over = {
            "RNNLM_SERVE_MAX_ROWS": {"dataframe_records": [{"text": "the time"}] * 4},
            "RNNLM_SERVE_MAX_NEW_TOKENS": {"dataframe_records": [{"prefix": "the"}] * 3,
                                           "params": {"tokens": 200}},
            "RNNLM_SERVE_MAX_CHARACTERS": {"dataframe_records": [{"text": "the time " * 60},
                                                                 {"text": "the time " * 60}]},
        }
        for setting, ask in over.items():
            started = time.perf_counter()
            status, body = post(served.url, ask)
            assert time.perf_counter() - started < 1.0
            assert status == 400 and setting in body["message"], body
        # Within the limits: answered.
        assert post(served.url, {"dataframe_records": [{"prefix": "the"}] * 3,
                                 "params": {"tokens": 160}})[0] == 200
        # A body no request within the limits needs is refused before it is parsed.
        started = time.perf_counter()
        status, body = post(served.url, {"dataframe_records": [{"text": "x" * 5_000_000}]})
        assert status == 413 and "--max-characters" in body["message"]
        assert time.perf_counter() - started < 1.0
    finally:
        served.stop()


@pytest.mark.slow
def test_numbers_out_of_range_are_refused_and_unk_is_never_generated(project, server) -> None:
    for params, message in (({"seed": 2**64}, "seed must be between 0 and 2**63 - 1"),
                            ({"seed": -1}, "seed must be between 0"),
                            ({"temperature": -0.5}, "temperature must be a finite number")):
        status, body = post(server, {"dataframe_records": [{"prefix": "the"}], "params": params})
        assert status == 400 and message in body["message"], (params, body)
    # A huge temperature is the uniform draw over what the model can produce: never <unk>,
    # which the prefix does not hold.
    status, body = post(server, {"dataframe_records": [{"prefix": "the"}],
                                 "params": {"tokens": 2000, "temperature": 1e300}})
    assert status == 200 and "<unk>" not in body["predictions"][0]["text"]
    deep = b'{"dataframe_records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, body = post(server, deep)
    assert status == 400 and "nested too deep" in body["message"]


LONG = {"dataframe_records": [{"prefix": "the"}], "params": {"tokens": 5_000_000}}
NO_LIMIT = {"RNNLM_SERVE_MAX_NEW_TOKENS": "100000000"}


def settles(served: Served, within_s: float = 3.0) -> bool:
    """The server stops using the CPU (its work stopped) within the given time."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        before = served.cpu_seconds()
        time.sleep(0.5)
        if served.cpu_seconds() - before < 0.1:
            return True
    return False


@pytest.mark.slow
def test_work_stops_when_the_request_times_out_or_the_client_leaves(project) -> None:
    served = Served(project, "--timeout", "2", env=NO_LIMIT)
    try:
        started = time.perf_counter()
        status, _ = post(served.url, LONG)
        assert status == 504 and time.perf_counter() - started < 10
        assert settles(served)
        with pytest.raises(TimeoutError):  # the client gives up after 1 s
            post(served.url, {**LONG, "params": {"tokens": 5_000_001}}, timeout=1.0)
        assert settles(served)
        started = time.perf_counter()
        assert post(served.url, {"dataframe_records": [{"text": "the time"}]})[0] == 200
        assert time.perf_counter() - started < 2.0
    finally:
        served.stop()


@pytest.mark.slow
def test_sigterm_stops_a_busy_server_within_seconds(project) -> None:
    served = Served(project, env=NO_LIMIT)
    with ThreadPoolExecutor(6) as pool:
        busy = [pool.submit(post, served.url, LONG, 120) for _ in range(6)]
        time.sleep(2.0)
        started = time.perf_counter()
        served.process.terminate()
        served.process.wait(timeout=30)
        assert time.perf_counter() - started < 8.0
        for future in busy:
            with contextlib.suppress(OSError):
                future.result()


def test_limits_apply_where_the_model_is_served_not_in_a_notebook(project, monkeypatch) -> None:
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from rnnlm.serving import budget

    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.uri)
    monkeypatch.delenv(budget.SERVING_VAR, raising=False)
    model = mlflow.pyfunc.load_model(f"models:/rnnlm-gru@{CHAMPION}")
    rows = pd.DataFrame({"prefix": ["the"] * (budget.DEFAULT_ROWS + 1)})
    assert len(model.predict(rows, params={"tokens": 1})) == budget.DEFAULT_ROWS + 1
    monkeypatch.setenv(budget.SERVING_VAR, "true")
    with pytest.raises(MlflowException, match=budget.ROWS_VAR):
        model.predict(rows, params={"tokens": 1})


@pytest.mark.slow
def test_a_body_that_never_arrives_is_answered_408_at_the_timeout(project) -> None:
    import socket

    served = Served(project, "--timeout", "2")
    try:
        port = int(served.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           b"application/json\r\nContent-Length: 1000\r\n\r\n{\"datafr")
            started = time.perf_counter()
            answer = b""
            while b"REQUEST_TIMEOUT" not in answer:  # the headers and the body may come apart
                chunk = client.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b"REQUEST_TIMEOUT" in answer
        assert 1.5 < time.perf_counter() - started < 10
    finally:
        served.stop()


def test_a_bad_timeout_is_one_line_before_the_model_loads(project) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rnnlm.serving.serve", "--name", "rnnlm-gru", "--timeout", "0"],
        cwd=project.work, env=project.env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT must be a whole number >= 1, got '0'"]


# The request guard and `make serve`'s command, in process: the rules the server tests above
# check over HTTP, without starting a server.

SMALL = Limits(rows=1, new_tokens=1, characters=10)  # bodies over 66,680 bytes are refused


def guard(chunks: list[bytes], path: str = "/invocations", then_wait: bool = False,
          limits: Limits = SMALL) -> tuple[list[dict], dict]:
    """`chunks` sent to a RequestGuard in front of an app that echoes the body: what was sent
    back, and what the app saw (nothing if it was never called). After the chunks the client
    goes away, or with `then_wait` sends nothing more."""
    seen: dict = {}

    async def app(scope, receive, send) -> None:
        seen["body"] = (await receive())["body"]
        seen["over"] = REQUEST_OVER.get()
        seen["over_while_working"] = seen["over"] is not None and seen["over"].is_set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": seen["body"]})

    messages = [{"type": "http.request", "body": chunk, "more_body": then_wait or i < len(
        chunks) - 1} for i, chunk in enumerate(chunks)]

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        if then_wait:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message) -> None:
        sent.append(message)

    asyncio.run(RequestGuard(app, limits)({"type": "http", "path": path}, receive, send))
    return sent, seen


def answer(sent: list[dict]) -> tuple[int, dict]:
    start, body = sent
    return start["status"], json.loads(body["body"])


def test_the_guard_hands_a_body_within_the_limits_to_the_app_and_ends_its_work_after() -> None:
    sent, seen = guard([b'{"dataframe_records": ', b'[{"text": "the"}]}'])
    assert seen["body"] == b'{"dataframe_records": [{"text": "the"}]}'
    assert sent[0]["status"] == 200 and sent[1]["body"] == seen["body"]
    # The prediction's "stop now" is clear while it works, and set once the request is over.
    assert not seen["over_while_working"] and seen["over"].is_set()
    assert REQUEST_OVER.get() is None
    sent, seen = guard([b"x" * 100_000], path="/health")  # other paths: not looked at
    assert seen["body"] == b"x" * 100_000 and seen["over"] is None


def test_the_guard_refuses_an_oversized_or_too_deep_body_before_the_app() -> None:
    assert max_body_bytes(SMALL) == 12 * 10 + 1_024 + 65_536
    sent, seen = guard([b"x" * 40_000, b"x" * 40_000])
    status, body = answer(sent)
    assert status == 413 and body["error_code"] == "REQUEST_TOO_LARGE" and not seen
    assert "66,680 bytes" in body["message"] and "--max-characters" in body["message"]
    sent, seen = guard([b"[" * 2_000 + b"]" * 2_000])
    status, body = answer(sent)
    assert status == 400 and "nested too deep" in body["message"] and not seen
    sent, seen = guard([b"[1] " * 1_000])  # many brackets, not deep, not JSON: MLflow's 400
    assert seen["body"] == b"[1] " * 1_000


def test_the_guard_answers_408_to_a_body_that_stops_and_nothing_to_a_client_gone(
        monkeypatch) -> None:
    monkeypatch.setenv(TIMEOUT_VAR, "1")
    sent, seen = guard([b'{"dataframe_re'], then_wait=True)
    status, body = answer(sent)
    assert status == 408 and body["error_code"] == "REQUEST_TIMEOUT" and not seen
    sent, seen = guard([])  # the client went away before its body
    assert sent == [] and not seen


def test_serve_passes_its_limits_and_serves_the_champion(project, monkeypatch, capsys) -> None:
    from rnnlm.serving import serve, server

    for name in (ROWS_VAR, NEW_TOKENS_VAR, CHARACTERS_VAR, TIMEOUT_VAR, "MLFLOW_TRACKING_URI",
                 "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"):
        monkeypatch.setenv(name, "")  # put back as it was after the test
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", project.uri)
    served = []
    monkeypatch.setattr(server, "run", lambda *args: served.append((args, dict(os.environ))))
    serve.main(["--name", "rnnlm-gru", "--port", "5999", "--max-rows", "7", "--timeout", "9"])
    [(args, env)] = served
    assert args == (f"models:/rnnlm-gru@{CHAMPION}", "127.0.0.1", 5999)
    assert env[ROWS_VAR] == "7" and env[TIMEOUT_VAR] == "9" and NEW_TOKENS_VAR not in env
    assert env["MLFLOW_TRACKING_URI"] == project.uri
    assert re.match(rf"Serving rnnlm-gru version \d+ \({CHAMPION}\) from ",
                    capsys.readouterr().out)


def test_serve_names_what_is_missing(project, tmp_path) -> None:
    from rnnlm.serving.serve import champion_uri, default_name

    # Read through the settings, as the stages read it: a file they would refuse is refused.
    write_params(tmp_path, committed_params(model={"kind": "lstm"}))
    assert default_name(tmp_path / "params.yaml") == "rnnlm-lstm"
    with pytest.raises(RnnlmError, match=r"missing.yaml not found(.|\n)*--name rnnlm-gru"):
        default_name(tmp_path / "missing.yaml")
    (tmp_path / "params.yaml").write_text("model:\n  kind: lstm\n")
    with pytest.raises(RnnlmError, match=r"missing key 'data'(.|\n)*--name rnnlm-gru"):
        default_name(tmp_path / "params.yaml")
    with pytest.raises(RnnlmError, match=r"no registered model 'rnnlm-mlp' with an alias "
                                         rf"'{CHAMPION}': run `make repro`"):
        champion_uri(project.uri, "rnnlm-mlp")
