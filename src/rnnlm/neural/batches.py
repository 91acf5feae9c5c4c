"""The book's two ways of cutting one long token sequence into minibatches.

Both start each epoch at a random offset in [0, num_steps) and yield (inputs, labels) pairs of
shape (batch_size, num_steps), labels being the inputs shifted by one token.

* Random sampling: the sequence is cut into subsequences of num_steps, served in random order;
  neighbouring minibatches are unrelated, so a model starts a fresh hidden state for each.
* Sequential partitioning: the sequence is laid out as batch_size parallel rows, so row b of
  minibatch i+1 continues row b of minibatch i and a model may carry its hidden state across.

Minibatches are numpy views or gathers over the (memory-mapped) id array: no per-token Python.

Data-parallel training shards every minibatch by rows: of world_size processes, rank r takes rows
[r*b, (r+1)*b) with b = batch_size / world_size. Under sequential partitioning each rank so keeps a
contiguous share of the parallel rows (and carries its own state for them); under random sampling
the subsequences are split without overlap. Every rank sees the same number of minibatches, and
together they see exactly what one process would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np

from rnnlm.errors import RnnlmError

Scheme = Literal["random", "sequential"]
Batch = tuple[np.ndarray, np.ndarray]


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """One independent, reproducible stream of randomness per (seed, epoch)."""
    return np.random.default_rng([seed, epoch])


def count_batches(n_tokens: int, batch_size: int, num_steps: int, scheme: Scheme,
                  offset: int) -> int:
    """Minibatches one epoch yields when it starts at `offset`."""
    usable = max(n_tokens - offset - 1, 0)  # the last token is only ever a label
    if scheme == "random":
        return (usable // num_steps) // batch_size
    return (usable // batch_size) // num_steps


def tokens_left_over(n_tokens: int, batch_size: int, num_steps: int, scheme: Scheme,
                     offset: int) -> int:
    """Tokens never served as an input in an epoch that starts at `offset`."""
    served = count_batches(n_tokens, batch_size, num_steps, scheme, offset) * batch_size * num_steps
    return n_tokens - served


def require_one_batch(n_tokens: int, batch_size: int, num_steps: int, scheme: Scheme,
                      what: str = "a split") -> None:
    """Raise unless every epoch, whatever its offset, yields at least one minibatch."""
    if count_batches(n_tokens, batch_size, num_steps, scheme, offset=num_steps - 1) < 1:
        need = batch_size * num_steps + num_steps
        raise RnnlmError(
            f"{what} of {n_tokens} tokens is too short for one minibatch of "
            f"batch_size={batch_size} x num_steps={num_steps} ({scheme} partitioning needs at "
            f"least {need} tokens): lower partition.batch_size or partition.num_steps, or use a "
            "longer corpus"
        )


def random_batches(ids: np.ndarray, batch_size: int, num_steps: int,
                   rng: np.random.Generator, rows: slice = slice(None)) -> Iterator[Batch]:
    offset = int(rng.integers(num_steps))
    n_subseqs = (len(ids) - offset - 1) // num_steps
    starts = offset + num_steps * rng.permutation(n_subseqs)
    window = np.arange(num_steps)
    for i in range(n_subseqs // batch_size):
        positions = starts[i * batch_size : (i + 1) * batch_size][rows, None] + window
        yield ids[positions], ids[positions + 1]


def sequential_batches(ids: np.ndarray, batch_size: int, num_steps: int,
                       rng: np.random.Generator, rows: slice = slice(None)) -> Iterator[Batch]:
    offset = int(rng.integers(num_steps))
    n_tokens = ((len(ids) - offset - 1) // batch_size) * batch_size
    inputs = ids[offset : offset + n_tokens].reshape(batch_size, -1)[rows]
    labels = ids[offset + 1 : offset + 1 + n_tokens].reshape(batch_size, -1)[rows]
    for i in range(inputs.shape[1] // num_steps):
        cols = slice(i * num_steps, (i + 1) * num_steps)
        yield inputs[:, cols], labels[:, cols]


@dataclass(frozen=True, eq=False)
class BatchSampler:
    """Reproducible epochs over one split: epoch e always yields the same minibatches."""

    ids: np.ndarray
    batch_size: int
    num_steps: int
    scheme: Scheme = "sequential"
    seed: int = 0
    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.scheme not in get_args(Scheme):
            raise RnnlmError(f"unknown partition scheme {self.scheme!r}; use random or sequential")
        require_one_batch(len(self.ids), self.batch_size, self.num_steps, self.scheme)
        check_shardable(self.batch_size, self.world_size)
        if not 0 <= self.rank < self.world_size:
            raise RnnlmError(f"rank {self.rank} is outside 0..{self.world_size - 1}")

    def shard(self, rank: int, world_size: int) -> BatchSampler:
        """The same epochs, cut down to the rows process `rank` of `world_size` trains on."""
        return replace(self, rank=rank, world_size=world_size)

    def minibatches(self, epoch: int) -> int:
        """How many minibatches `epoch` yields (its offset is the first draw of its rng)."""
        offset = int(epoch_rng(self.seed, epoch).integers(self.num_steps))
        return count_batches(len(self.ids), self.batch_size, self.num_steps, self.scheme, offset)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        rng = epoch_rng(self.seed, epoch)  # the same on every rank: the same offset and order
        batches = random_batches if self.scheme == "random" else sequential_batches
        share = self.batch_size // self.world_size
        rows = slice(self.rank * share, (self.rank + 1) * share)
        return batches(self.ids, self.batch_size, self.num_steps, rng, rows)


def check_shardable(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise RnnlmError(
            f"partition.batch_size={batch_size} does not split evenly over {world_size} "
            f"training processes: make it a multiple of {world_size} (every process takes "
            "batch_size / processes rows of each minibatch)")
