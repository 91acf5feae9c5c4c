"""Benchmark: latency of the registered champion served by `mlflow models serve` (HTTP on
loopback, one request at a time) against the same MLflow Model called in process, for scoring
1,000 characters and for generating 100 tokens (characters at char level).

Run it in a project where `dvc repro` has registered its models. The requests alternate (served,
in process, served, ...) so that both see the same machine; the first few of each are warm-up.

    python bench/bench_serving.py [--name rnnlm-gru] [--requests 200]
        [--out reports/bench/serving.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

WARMUP = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def wait_for(url: str, process: subprocess.Popen, seconds: float = 180) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if process.poll() is not None:
            raise SystemExit("the server stopped before answering")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return time.perf_counter() - started
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no answer from {url}/health within {seconds} s")


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds[WARMUP:]) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "requests": len(ms)}


def main() -> None:
    import mlflow
    import pandas as pd
    from _worker import save

    from rnnlm import layout, tracking
    from rnnlm.serving.serve import default_name
    from rnnlm.text.vocab import Vocab

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="registered model (default: that of params.yaml)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/serving.json"))
    args = parser.parse_args()
    name = args.name or default_name()
    vocab = Vocab.load(layout.VOCAB)
    test = "".join(vocab.decode(np.load(layout.ids_path("test"))))
    if len(test) < 1000:
        raise SystemExit("the test split has fewer than 1,000 characters (a char-level "
                         "configuration is needed)")
    text = test[:1000]
    generate = {"tokens": 100, "temperature": 1.0, "seed": 0}
    uri = tracking.tracking_uri()
    mlflow.set_tracking_uri(uri)
    in_process = mlflow.pyfunc.load_model(f"models:/{name}@champion")

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    server = subprocess.Popen(
        [sys.executable, "-m", "rnnlm.serving.serve", "--name", name, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        startup = wait_for(url, server)
        cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "score_1000_chars": (
                lambda: post(url, {"dataframe_records": [{"text": text}]}),
                lambda: in_process.predict(pd.DataFrame({"text": [text]}))),
            "generate_100_tokens": (
                lambda: post(url, {"dataframe_records": [{"prefix": "the time traveller"}],
                                   "params": generate}),
                lambda: in_process.predict(pd.DataFrame({"prefix": ["the time traveller"]}),
                                           params=generate)),
        }
        results: dict[str, object] = {"model": name, "server_startup_s": startup}
        for case, (served, local) in cases.items():
            timings: dict[str, list[float]] = {"served": [], "in_process": []}
            for _ in range(args.requests + WARMUP):
                for label, call in (("served", served), ("in_process", local)):
                    started = time.perf_counter()
                    call()
                    timings[label].append(time.perf_counter() - started)
            figures = {label: percentiles(t) for label, t in timings.items()}
            results[case] = figures
            print(f"{case}: " + "; ".join(
                f"{label} p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms"
                for label, r in figures.items()))
        print(f"server startup (until /health answers): {startup:.1f} s")
        save(args.out, results)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
