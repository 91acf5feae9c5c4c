"""Benchmark: training throughput (tokens/s) on this machine's CPU.

For each model kind (default sizes hidden 256, batch 32, 35 steps), on the Time Machine's
character ids, at each thread count asked for:
- `book`: a plain loop feeding one-hot inputs to the torch.nn layer of the same cell (`nn.RNN`
  for `scratch` and `rnn`, `nn.GRU`, `nn.LSTM`), as the book's concise implementation does (its
  `RNNModel`, `grad_clipping` and `train_epoch_ch8`);
- `bare`: our own plain loop over this project's LightningModule (`training_step`, clipping by
  `clip_grad_norm_`, optimiser step), no Trainer;
- `lightning`: the same module trained by Lightning's Trainer (as the train stage does), in
  each `--precision` asked for (`bf16-mixed`: bfloat16 autocast on the CPU, float32 weights);
- with `--compile`, `compiled`: the same, its model wrapped in `torch.compile` (one module,
  compiled once per kind and thread count; its first fit, over the warm-up minibatches, is timed
  apart as the compile time).
Each figure is the median of `--repeats` interleaved runs of `--steps` minibatches after warm-up.
The CPU code paths are pinned as in the train stage (importing `pipeline`: MKL's AVX2 path).

    python bench/bench_train.py [--hidden 256] [--batch 32] [--threads 1 2] [--steps 150]
                                [--repeats 3] [--precision 32 [bf16-mixed]] [--compile]
                                [--out reports/bench/train.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import pipeline  # noqa: F401  (pins the CPU code paths as the train stage does, before torch)

# isort: split
import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from rnnlm.neural.batches import BatchSampler
from rnnlm.neural.options import Precision, TrainerOptions
from rnnlm.neural.task import LanguageModelTask
from rnnlm.neural.trainer import build_trainer

STEPS = 35
BOOK_LAYER = {"scratch": nn.RNN, "rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def minibatches(ids: np.ndarray, batch: int, count: int
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    sampler = BatchSampler(ids, batch, STEPS, "sequential", seed=0)
    out = []
    epoch = 0
    while len(out) < count:
        for x, y in sampler.epoch(epoch):
            out.append((torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))))
            if len(out) == count:
                break
        epoch += 1
    return out


class BookRNNModel(nn.Module):
    """The book's concise RNN model: one-hot inputs, time-major, a torch.nn recurrent layer, a
    dense output layer."""

    def __init__(self, layer: type[nn.Module], vocab_size: int, hidden: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.rnn = layer(vocab_size, hidden)
        self.linear = nn.Linear(hidden, vocab_size)

    def forward(self, inputs: torch.Tensor, state: torch.Tensor):
        x = F.one_hot(inputs.T.long(), self.vocab_size).type(torch.float32)
        y, state = self.rnn(x, state)
        return self.linear(y.reshape((-1, y.shape[-1]))), state


def book(data, vocab_size: int, kind: str, hidden: int) -> float:
    net = BookRNNModel(BOOK_LAYER[kind], vocab_size, hidden)
    updater = torch.optim.SGD(net.parameters(), lr=1)
    loss = nn.CrossEntropyLoss()
    state, total, count = None, 0.0, 0
    start = time.perf_counter()
    for x, y in data:
        if state is None:  # the book's begin_state: a tuple of (h, c) for an LSTM
            h = torch.zeros((1, x.shape[0], hidden))
            state = (h, torch.zeros_like(h)) if kind == "lstm" else h
        else:
            for s in state if isinstance(state, tuple) else (state,):
                s.detach_()
        y = y.T.reshape(-1)
        y_hat, state = net(x, state)
        batch_loss = loss(y_hat, y.long()).mean()
        updater.zero_grad()
        batch_loss.backward()
        params = [p for p in net.parameters() if p.requires_grad]
        norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))
        if norm > 1:
            for p in params:
                p.grad[:] *= 1 / norm
        updater.step()
        total += float(batch_loss) * y.numel()  # the book's metric.add(l * y.numel(), ...)
        count += y.numel()
    return count / (time.perf_counter() - start)


def make_task(kind: str, vocab_size: int, hidden: int) -> LanguageModelTask:
    torch.manual_seed(0)
    return LanguageModelTask(vocab_size, {"kind": kind, "hidden": hidden}, optimizer="sgd", lr=1.0)


def bare(data, vocab_size: int, kind: str, hidden: int) -> float:
    task = make_task(kind, vocab_size, hidden)
    optimizer = task.configure_optimizers()

    class _Trainer:  # what training_step reads
        class state:
            fn = "fit"

        current_epoch = 0
        optimizers = (optimizer,)

    task._trainer = _Trainer()  # type: ignore[assignment]
    task.on_train_epoch_start()
    count = 0
    start = time.perf_counter()
    for i, batch in enumerate(data):
        loss = task.training_step(batch, i)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 1.0)
        optimizer.step()
        count += batch[1].numel()
    return count / (time.perf_counter() - start)


class _Clock(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def lightning(data, vocab_size: int, kind: str, hidden: int, tmp: Path,
              precision: Precision = "32", task: LanguageModelTask | None = None) -> float:
    task = task or make_task(kind, vocab_size, hidden)
    clock = _Clock()
    # The thread count the caller set, not `train.threads: auto` (which picks its own).
    options = TrainerOptions(epochs=1, clip=1.0, accelerator="cpu", devices=1,
                             threads=torch.get_num_threads(), precision=precision)
    trainer = build_trainer(options, tmp, callbacks=[clock])
    trainer.limit_val_batches = 0
    loader = torch.utils.data.DataLoader(data, batch_size=None)
    trainer.fit(task, train_dataloaders=loader)
    return sum(y.numel() for _, y in data) / clock.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=Path, default=Path("data/processed/ids/train.npy"))
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=["scratch", "rnn", "gru", "lstm"])
    parser.add_argument("--precision", nargs="+", default=["32"],
                        choices=["32", "bf16-mixed"])
    parser.add_argument("--compile", action="store_true",
                        help="also time the model under torch.compile (float32)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/train.json"))
    args = parser.parse_args()
    import logging
    import tempfile
    import warnings

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    ids = np.load(args.ids)
    vocab_size = int(ids.max()) + 1
    data = minibatches(ids, args.batch, args.steps)
    warm = data[:20]
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads:
            torch.set_num_threads(threads)
            results[f"threads_{threads}"] = by_kind = {}
            for kind in args.kinds:
                book(warm, vocab_size, kind, args.hidden)
                bare(warm, vocab_size, kind, args.hidden)
                # "lightning" in float32, "lightning_bf16-mixed" and so on in the others.
                trained = {p: "lightning" + ("" if p == "32" else f"_{p}")
                           for p in args.precision}
                runs: dict[str, list[float]] = {"book": [], "bare": [],
                                                **{name: [] for name in trained.values()}}
                compiled = None
                if args.compile:
                    compiled = make_task(kind, vocab_size, args.hidden)
                    compiled.model = torch.compile(compiled.model)  # type: ignore[assignment]
                    started = time.perf_counter()
                    lightning(warm, vocab_size, kind, args.hidden, Path(tmp), task=compiled)
                    compile_s = time.perf_counter() - started
                    runs["compiled"] = []
                for _ in range(args.repeats):  # interleaved, so drifts in machine speed hit all
                    runs["book"].append(book(data, vocab_size, kind, args.hidden))
                    runs["bare"].append(bare(data, vocab_size, kind, args.hidden))
                    for precision, name in trained.items():
                        runs[name].append(lightning(data, vocab_size, kind, args.hidden,
                                                    Path(tmp), precision))
                    if compiled is not None:
                        runs["compiled"].append(lightning(data, vocab_size, kind, args.hidden,
                                                          Path(tmp), task=compiled))
                med = {k: statistics.median(v) for k, v in runs.items()}
                by_kind[kind] = r = {f"{k}_tokens_per_s": v for k, v in med.items()}
                for precision, name in trained.items():
                    speedup = r[f"speedup_over_book{name.removeprefix('lightning')}"] = \
                        med[name] / med["book"]
                    line = (f"{threads} thread(s) {kind:>8} {precision:>10}: lightning "
                            f"{med[name]:9,.0f} tok/s  book loop ({BOOK_LAYER[kind].__name__}, "
                            f"one-hot, float32) {med['book']:9,.0f}  -> {speedup:.2f}x the book")
                    if precision == "32":  # the bare loop trains in float32
                        r["lightning_overhead"] = 1 - med[name] / med["bare"]
                        line += (f"; bare {med['bare']:9,.0f}, Lightning overhead "
                                 f"{100 * r['lightning_overhead']:+.1f}%")
                    print(line, flush=True)
                if compiled is not None:
                    r["speedup_over_book_compiled"] = med["compiled"] / med["book"]
                    r["compile_warmup_s"] = compile_s
                    print(f"{threads} thread(s) {kind:>8}   compiled: lightning "
                          f"{med['compiled']:9,.0f} tok/s -> "
                          f"{r['speedup_over_book_compiled']:.2f}x the book, "
                          f"{med['compiled'] / med.get('lightning', float('nan')):.2f}x "
                          f"not compiled; first "
                          f"{len(warm)} minibatches (compiling) {compile_s:.1f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"hidden": args.hidden, "batch_size": args.batch,
                                    "num_steps": STEPS, **results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
