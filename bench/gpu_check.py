"""GPU check and throughput (run by bench/gpu.sh): needs torch and pytorch-lightning only.

1. Each model kind's loss on one minibatch, on the GPU against the CPU (same weights, same ids).
2. tokens/s of `lstm` and `gru` at hidden 1024, batch 256, 35 steps, through the train stage's
   Lightning Trainer in precision `32` and `bf16-mixed`, beside the book's loop (one-hot inputs
   to `nn.LSTM`/`nn.GRU`, gradient clipping, SGD) on the same card.
Prints one table. Without a GPU it runs on the CPU (a dry run of the script: CPU against CPU).
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from rnnlm.neural.batches import BatchSampler
from rnnlm.neural.options import TrainerOptions
from rnnlm.neural.task import LanguageModelTask
from rnnlm.neural.trainer import build_trainer

VOCAB = 28  # The Time Machine's characters
KINDS = ("scratch", "rnn", "gru", "lstm", "mlp")


def minibatches(batch: int, steps: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` minibatches of the book's sequential iterator over seeded random ids."""
    ids = np.random.default_rng(0).integers(0, VOCAB, batch * steps * (count + 1) + 1,
                                            dtype=np.int32)
    sampler = BatchSampler(ids, batch, steps, "sequential", seed=0)
    out = [(torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64)))
           for x, y in sampler.epoch(0)]
    return out[:count]


def first_loss(task: LanguageModelTask, batch, device: torch.device) -> float:
    task = task.to(device).eval()
    x, y = (t.to(device) for t in batch)
    with torch.no_grad():
        logits, _ = task(x)
        return F.cross_entropy(logits.reshape(-1, VOCAB).float(), y.reshape(-1)).item()


def same_losses(device: torch.device) -> list[tuple[str, float, float]]:
    batch = minibatches(32, 35, 1)[0]
    rows = []
    for kind in KINDS:
        torch.manual_seed(0)
        task = LanguageModelTask(VOCAB, {"kind": kind, "hidden": 256})
        cpu = first_loss(copy.deepcopy(task), batch, torch.device("cpu"))
        rows.append((kind, cpu, first_loss(task, batch, device)))
    return rows


class Timed(pl.Callback):
    """tokens/s over the minibatches after the first `warm` ones, synchronised with the GPU."""

    def __init__(self, warm: int) -> None:
        self.warm, self.tokens, self.start, self.seconds = warm, 0, 0.0, 0.0

    def _now(self) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.warm:
            self.start = self._now()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warm:
            self.tokens += batch[1].numel()
            self.seconds = self._now() - self.start


def lightning(kind: str, precision: str, data, accelerator: str, warm: int) -> float:
    torch.manual_seed(0)
    task = LanguageModelTask(VOCAB, {"kind": kind, "hidden": 1024, "embed": 0},
                             optimizer="sgd", lr=1.0)
    timed = Timed(warm)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(TrainerOptions(epochs=1, clip=1.0, accelerator=accelerator,
                                               devices=1, precision=precision),
                                Path(tmp), progress=False, callbacks=[timed])
        trainer.limit_val_batches = 0
        trainer.fit(task, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    return timed.tokens / timed.seconds


class BookModel(nn.Module):
    """The book's concise RNN model: one-hot inputs, time-major, the layer, a dense output."""

    def __init__(self, layer: type[nn.Module], hidden: int) -> None:
        super().__init__()
        self.rnn = layer(VOCAB, hidden)
        self.linear = nn.Linear(hidden, VOCAB)

    def forward(self, inputs: torch.Tensor, state):
        x = F.one_hot(inputs.T.long(), VOCAB).type(torch.float32)
        y, state = self.rnn(x, state)
        return self.linear(y.reshape(-1, y.shape[-1])), state


def book(kind: str, data, device: torch.device, warm: int) -> float:
    torch.manual_seed(0)
    layer = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
    model = BookModel(layer, 1024).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    state = None
    tokens, start = 0, 0.0
    for i, (x, y) in enumerate(data):
        if i == warm:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        x, y = x.to(device), y.to(device)
        if state is not None:  # sequential partitioning: carry the state, detached
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        logits, state = model(x, state)
        loss = F.cross_entropy(logits, y.T.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if i >= warm:
            tokens += y.numel()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minibatches", type=int, default=60)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    where = torch.cuda.get_device_name() if gpu else "no GPU: CPU against CPU (a dry run)"
    print(f"device: {where}; torch {torch.__version__}, lightning {pl.__version__}")

    print("\n| kind | loss on the CPU | loss on the device | difference |\n|---|---|---|---|")
    worst = 0.0
    for kind, cpu, dev in same_losses(device):
        worst = max(worst, abs(cpu - dev))
        print(f"| {kind} | {cpu:.6f} | {dev:.6f} | {abs(cpu - dev):.2e} |")
    print(f"largest difference {worst:.2e}: {'within' if worst < 1e-3 else 'OVER'} 1e-3")

    data = minibatches(args.batch, 35, args.minibatches)
    warm = min(10, args.minibatches // 3)
    precisions = ["32", "bf16-mixed"] if gpu else ["32"]
    print("\n| kind | precision | Lightning tok/s | book loop tok/s | vs the book |\n"
          "|---|---|---|---|---|")
    for kind in ("lstm", "gru"):
        base = book(kind, data, device, warm)
        for precision in precisions:
            ours = lightning(kind, precision, data, "gpu" if gpu else "cpu", warm)
            print(f"| {kind} | {precision} | {ours:,.0f} | {base:,.0f} | {ours / base:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
