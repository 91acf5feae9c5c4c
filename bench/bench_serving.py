"""Benchmark: latency of the registered champion served by `mlflow models serve` (HTTP on
loopback, one request at a time) against the same MLflow Model called in process, for scoring
1,000 characters and for generating 100 tokens (characters at char level).

Run it in a project where `dvc repro` has registered its models. The requests alternate (served,
in process, served, ...) so that both see the same machine; the first few of each are warm-up.

    python bench/bench_serving.py [--name rnnlm-gru] [--requests 200]
        [--out reports/bench/serving.json]

With --load it measures the server under concurrent clients instead: at concurrency 1, 4 and 16,
`--requests` requests alternating scoring 1,000 characters and generating 100 tokens; requests
per second and p50/p95/p99 latency. Then the p95 of a small request (scoring 100 characters)
while two clients keep sending the largest requests the default limits accept, and the server's
resident memory: idle, and its peak (VmHWM) after scoring the largest accepted text.

    python bench/bench_serving.py --load [--requests 300] [--out reports/bench/serving_load.json]

With --score N it serves with the characters limit raised to N and scores one text of N characters
(the test split repeated): the time it takes and the server's memory, idle and at its peak.
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


def percentiles(seconds: list[float], warmup: int = WARMUP) -> dict[str, float]:
    ms = np.array(seconds[warmup:]) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "requests": len(ms)}


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def memory_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no {field} for process {pid}")


def load(url: str, pid: int, text: str, requests: int) -> dict[str, object]:
    """Concurrent clients against the server: throughput, latency, interference, memory."""
    from concurrent.futures import ThreadPoolExecutor

    from rnnlm.serving import budget

    asks = [{"dataframe_records": [{"text": text}]},
            {"dataframe_records": [{"prefix": "the time traveller"}],
             "params": {"tokens": 100, "temperature": 1.0, "seed": 0}}]
    results: dict[str, object] = {"idle_rss_mb": memory_mb(pid, "VmRSS")}
    for clients in (1, 4, 16):
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda i: post(url, asks[i % 2]), range(2 * clients)))  # warm-up
            started = time.perf_counter()
            seconds = list(pool.map(lambda i: timed(lambda: post(url, asks[i % 2])),
                                    range(requests)))
            wall = time.perf_counter() - started
        figures = {"requests_per_s": requests / wall, **percentiles(seconds, 0)}
        results[f"concurrency_{clients}"] = figures
        print(f"concurrency {clients:2d}: {figures['requests_per_s']:.1f} requests/s, p50 "
              f"{figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} ms, p99 "
              f"{figures['p99_ms']:.0f} ms")
    big_text = (text * (budget.DEFAULT_CHARACTERS // len(text) + 1))[:budget.DEFAULT_CHARACTERS]
    large = [{"dataframe_records": [{"text": big_text}]},
             {"dataframe_records": [{"prefix": "the"}],
              "params": {"tokens": budget.DEFAULT_NEW_TOKENS}}]
    small = {"dataframe_records": [{"text": text[:100]}]}
    running = True

    def keep_sending(ask: dict) -> int:
        sent = 0
        while running:
            post(url, ask)
            sent += 1
        return sent

    with ThreadPoolExecutor(2) as pool:
        busy = [pool.submit(keep_sending, ask) for ask in large]
        time.sleep(1.0)
        seconds = [timed(lambda: post(url, small)) for _ in range(100)]
        running = False
        large_done = sum(future.result() for future in busy)
    figures = {**percentiles(seconds, 0), "large_requests_meanwhile": large_done}
    results["small_while_large"] = figures
    print(f"scoring 100 characters while two clients send the largest accepted requests: p50 "
          f"{figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} ms ({large_done} large "
          "requests answered meanwhile)")
    results["peak_rss_mb"] = memory_mb(pid, "VmHWM")
    print(f"server memory: idle {results['idle_rss_mb']:.0f} MB, peak "
          f"{results['peak_rss_mb']:.0f} MB (after scoring {budget.DEFAULT_CHARACTERS:,} "
          "characters, the default limit)")
    return results


def main() -> None:
    import mlflow
    import pandas as pd
    from _worker import exit_on_sigterm, save

    exit_on_sigterm()

    from rnnlm import layout
    from rnnlm.serving.serve import default_name
    from rnnlm.text.vocab import Vocab
    from rnnlm.tracking import connection

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="registered model (default: that of params.yaml)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", type=Path, help="default: reports/bench/serving.json, or "
                                                 "serving_load.json with --load")
    parser.add_argument("--load", action="store_true", help="concurrent clients (see above)")
    parser.add_argument("--score", type=int, metavar="N", help="one text of N characters")
    args = parser.parse_args()
    out = args.out or Path(f"reports/bench/serving{'_load' if args.load else ''}.json")
    name = args.name or default_name()
    vocab = Vocab.load(layout.VOCAB)
    test = "".join(vocab.decode(np.load(layout.ids_path("test"))))
    if len(test) < 1000:
        raise SystemExit("the test split has fewer than 1,000 characters (a char-level "
                         "configuration is needed)")
    text = test[:1000]
    generate = {"tokens": 100, "temperature": 1.0, "seed": 0}
    uri = connection.tracking_uri()
    mlflow.set_tracking_uri(uri)
    in_process = mlflow.pyfunc.load_model(f"models:/{name}@champion")

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    server = subprocess.Popen(
        [sys.executable, "-m", "rnnlm.serving.serve", "--name", name, "--port", str(port),
         *(["--max-characters", str(args.score), "--timeout", "3600"] if args.score else [])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        startup = wait_for(url, server)
        if args.score:
            idle = memory_mb(server.pid, "VmRSS")
            long_text = (test * (args.score // len(test) + 1))[: args.score]
            request = urllib.request.Request(
                f"{url}/invocations", headers={"Content-Type": "application/json"},
                data=json.dumps({"dataframe_records": [{"text": long_text}]}).encode())
            seconds = timed(lambda: urllib.request.urlopen(request, timeout=3600).read())
            print(f"scoring {args.score:,} characters: {seconds:.0f} s; server memory idle "
                  f"{idle:.0f} MB, peak {memory_mb(server.pid, 'VmHWM'):.0f} MB")
            return
        if args.load:
            save(out, {"model": name, **load(url, server.pid, text, args.requests)})
            return
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
        save(out, results)
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
