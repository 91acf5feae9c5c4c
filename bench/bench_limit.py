"""Benchmark: how close a training step comes to the hardware's limit on this CPU.

For each kind (`rnn`, `gru`, `lstm`), hidden size and batch size (35 steps, the Time Machine's 28
characters, one-hot inputs), at one thread and at two:
- `limit`: the bare tensor operations one training step needs, in a tight loop on preallocated
  tensors, without autograd: per step the recurrent product `H_{t-1} W_hh^T` for all gates, one
  elementwise pass over the gates and one over the state; the output layer and its log-softmax
  over all steps at once; backward: the output layer's two gradient products, per step one
  elementwise pass over the gates and the product `dG_t W_hh`, one weight-gradient product over
  all steps; the SGD update.
- `train`: a minibatch of the train stage's Lightning Trainer over the project's module (SGD,
  clipping at 1), after warm-up.
The fraction is limit time / train time: 1 would be the train stage doing nothing but the
arithmetic. `products` times the same loop with its matrix products alone (no elementwise pass):
a floor no implementation of the step goes below, short of other algorithms. The CPU code paths
are pinned as in the train stage (importing `pipeline`: MKL's AVX2 path).

    python bench/bench_limit.py [--seconds 3] [--out reports/bench/limit.json]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pipeline  # noqa: F401  (pins the CPU code paths as the train stage does, before torch)

# isort: split
import numpy as np
import pytorch_lightning as pl
import torch

from rnnlm.neural.batches import BatchSampler
from rnnlm.neural.options import TrainerOptions
from rnnlm.neural.task import LanguageModelTask
from rnnlm.neural.trainer import build_trainer

VOCAB, STEPS = 28, 35
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def timed_loop(step, seconds: float) -> float:
    """Seconds per call of `step`, after two warm-up calls, over at least `seconds`."""
    step()
    step()
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < seconds:
        step()
        n += 1
    return (time.perf_counter() - start) / n


def limit_step(kind: str, hidden: int, batch: int, products_only: bool = False):
    g = GATES[kind] * hidden
    w_hh = torch.randn(g, hidden) * 0.01
    w_t = w_hh.t().contiguous()
    w_out = torch.randn(VOCAB, hidden) * 0.01
    projected = torch.randn(STEPS, batch, g)
    gates = torch.empty(STEPS, batch, g)
    states = torch.zeros(STEPS + 1, batch, hidden)
    grad_gates = torch.empty(STEPS, batch, g)
    grad_w = torch.empty(g, hidden)

    def step() -> None:
        for t in range(STEPS):
            torch.addmm(projected[t], states[t], w_t, out=gates[t])
            if products_only:
                continue
            torch.sigmoid_(gates[t]) if kind != "rnn" else torch.tanh_(gates[t])
            torch.addcmul(states[t], gates[t, :, :hidden], gates[t, :, -hidden:],
                          out=states[t + 1])
        flat = states[1:].flatten(0, 1)
        logits = flat @ w_out.t()
        grad_logits = torch.log_softmax(logits, dim=1)
        grad_out = grad_logits.t() @ flat
        grad_h_all = grad_logits @ w_out
        grad_h = grad_h_all[-batch:]
        for t in range(STEPS - 1, -1, -1):
            if not products_only:
                torch.mul(gates[t], grad_h.repeat(1, GATES[kind]) if kind != "rnn" else grad_h,
                          out=grad_gates[t])
            grad_h = torch.addmm(grad_h_all[t * batch:(t + 1) * batch], grad_gates[t], w_hh)
        torch.mm(grad_gates.flatten(0, 1).t(), states[:-1].flatten(0, 1), out=grad_w)
        w_hh.add_(grad_w, alpha=-1e-9)
        w_out.add_(grad_out, alpha=-1e-9)

    return step


class _Seconds(pl.Callback):
    def __init__(self, warm: int) -> None:
        self.warm, self.times = warm, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warm:
            self.times.append(time.perf_counter() - self.start)


def train_step_seconds(kind: str, hidden: int, batch: int, threads: int, seconds: float,
                       limit_seconds: float) -> float:
    count = 2 + max(3, int(seconds / max(limit_seconds, 1e-6)))
    ids = np.random.default_rng(0).integers(0, VOCAB, batch * STEPS * (count + 1) + 1,
                                            dtype=np.int32)
    data = [(torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64)))
            for x, y in BatchSampler(ids, batch, STEPS, "sequential", seed=0).epoch(0)][:count]
    torch.manual_seed(0)
    task = LanguageModelTask(VOCAB, {"kind": kind, "hidden": hidden}, optimizer="sgd", lr=1.0)
    clock = _Seconds(warm=2)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(TrainerOptions(epochs=1, clip=1.0, accelerator="cpu", devices=1,
                                               threads=threads), Path(tmp), progress=False,
                                callbacks=[clock])
        trainer.limit_val_batches = 0
        trainer.fit(task, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    return float(np.median(clock.times))


def main() -> None:
    from _worker import save

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--out", type=Path, default=Path("reports/bench/limit.json"))
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    rows = []
    print("| kind | hidden | batch | threads | limit ms/step | products ms/step | train ms/step "
          "| fraction | of products | train tok/s |\n|---|---|---|---|---|---|---|---|---|---|")
    for kind in GATES:
        for hidden in args.hidden:
            for batch in args.batch:
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    with torch.no_grad():
                        limit = timed_loop(limit_step(kind, hidden, batch), args.seconds)
                        products = timed_loop(limit_step(kind, hidden, batch, True),
                                              args.seconds)
                    train = train_step_seconds(kind, hidden, batch, threads, args.seconds, limit)
                    row = {"kind": kind, "hidden": hidden, "batch": batch, "threads": threads,
                           "limit_s": limit, "products_s": products, "train_s": train,
                           "fraction": limit / train, "products_fraction": products / train,
                           "train_tokens_per_s": batch * STEPS / train}
                    rows.append(row)
                    print(f"| {kind} | {hidden} | {batch} | {threads} | {limit * 1e3:.1f} | "
                          f"{products * 1e3:.1f} | {train * 1e3:.1f} | {limit / train:.2f} | "
                          f"{products / train:.2f} | "
                          f"{batch * STEPS / train:,.0f} |", flush=True)
    save(args.out, rows)


if __name__ == "__main__":
    main()
