"""Benchmark: a training's speed when it shares the CPU.

The train stage's Lightning training of the default model (GRU, hidden 256, batch 32, 35 steps)
on the Time Machine's character ids, in fresh processes, in three situations: alone; two
identical trainings started together; one beside a busy loop that keeps one core busy. Each
with `train.threads` at PyTorch's default (as many threads as cores: the behaviour before
`auto`) and at `auto` (rnnlm.neural.threads), interleaved, `--repeats` times; each training
runs `--seconds` and reports its tokens/s.

    python bench/bench_sharing.py [--seconds 15] [--repeats 2] [--out reports/bench/sharing.json]

Needs `data/processed/ids/train.npy` (run `dvc repro partition` first).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def worker(ids_path: Path, threads: str, seconds: float) -> None:
    import logging
    import warnings

    import pytorch_lightning as pl
    import torch
    from _worker import report
    from bench_train import make_task, minibatches

    from rnnlm.neural.options import TrainerOptions
    from rnnlm.neural.threads import ThreadShare, usable_cores
    from rnnlm.neural.trainer import build_trainer

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    ids = np.load(ids_path)
    vocab_size = int(ids.max()) + 1
    data = minibatches(ids, 2000)
    torch.manual_seed(0)
    task = make_task("gru", vocab_size)

    class Timed(pl.Callback):
        """Counts tokens after a warm-up of 5 minibatches; stops after `seconds`."""

        def __init__(self) -> None:
            self.tokens, self.start = 0, 0.0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx == 4:
                self.start = time.perf_counter()
            elif batch_idx > 4:
                self.tokens += batch[1].numel()
                if time.perf_counter() - self.start >= seconds:
                    trainer.should_stop = True

    timed = Timed()
    # "default": as many threads as cores, as PyTorch starts, and no sharing.
    fixed = usable_cores() if threads == "default" else "auto"
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(TrainerOptions(epochs=1, clip=1.0, accelerator="cpu", devices=1,
                                               threads=fixed), Path(tmp), progress=False,
                                callbacks=[timed])
        trainer.limit_val_batches = 0
        loader = torch.utils.data.DataLoader(data, batch_size=None)
        trainer.fit(task, train_dataloaders=loader)
    share = next((c for c in trainer.callbacks if isinstance(c, ThreadShare)), None)
    report({"tokens_per_s": timed.tokens / (time.perf_counter() - timed.start),
            "threads": share.chosen if share else [fixed]})


def start(ids: Path, threads: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(Path(__file__)), "--worker", str(ids), threads,
                             str(seconds)], stdout=subprocess.PIPE, text=True)


def result(process: subprocess.Popen[str]) -> dict:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a benchmark worker failed (exit {process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def situation(name: str, ids: Path, threads: str, seconds: float) -> list[dict]:
    if name == "alone":
        return [result(start(ids, threads, seconds))]
    if name == "two at once":
        pair = [start(ids, threads, seconds), start(ids, threads, seconds)]
        return [result(p) for p in pair]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        return [result(start(ids, threads, seconds))]
    finally:
        busy.kill()
        busy.wait()


def main() -> None:
    from _worker import exit_on_sigterm, save

    exit_on_sigterm()

    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(HERE))
        worker(Path(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=Path, default=Path("data/processed/ids/train.npy"))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/sharing.json"))
    args = parser.parse_args()
    if not args.ids.is_file():
        raise SystemExit(f"{args.ids} is missing: run `dvc repro partition` first")
    situations = ("alone", "two at once", "beside a busy core")
    runs: dict[str, dict[str, list[list[float]]]] = {
        t: {s: [] for s in situations} for t in ("default", "auto")}
    threads_seen: dict[str, dict[str, list]] = {t: {s: [] for s in situations} for t in runs}
    for _ in range(args.repeats):  # interleaved: a drift in machine speed hits every case
        for name in situations:
            for threads in runs:
                out = situation(name, args.ids, threads, args.seconds)
                runs[threads][name].append([r["tokens_per_s"] for r in out])
                threads_seen[threads][name].append([r["threads"] for r in out])
                print(f"{threads:>7} | {name:<18} | " + ", ".join(
                    f"{r['tokens_per_s']:,.0f} tokens/s (threads {r['threads']})" for r in out),
                    flush=True)
    summary: dict[str, dict[str, object]] = {}
    for threads, by_situation in runs.items():
        solo = statistics.median(v[0] for v in by_situation["alone"])
        two = [statistics.median(v[i] for v in by_situation["two at once"]) for i in range(2)]
        busy = statistics.median(v[0] for v in by_situation["beside a busy core"])
        summary[threads] = {
            "alone_tokens_per_s": solo, "two_at_once_tokens_per_s": two,
            "two_together_vs_alone": sum(two) / solo, "each_of_two_vs_alone": min(two) / solo,
            "beside_busy_tokens_per_s": busy, "beside_busy_vs_alone": busy / solo,
            "threads": threads_seen[threads],
        }
    print(json.dumps({t: {k: v for k, v in s.items() if k != "threads"}
                      for t, s in summary.items()}, indent=2))
    save(args.out, summary)


if __name__ == "__main__":
    main()
