"""The data side of training: the book's minibatch iterators as a LightningDataModule.

Training minibatches come from `BatchSampler` (random sampling or sequential partitioning), epoch
by epoch from `(seed, epoch)`, so a resumed run sees the same minibatches as an uninterrupted one.
The epoch comes from Lightning's own `set_epoch` call at the start of every epoch (the value it
restores on resume), not from reading `trainer.current_epoch` while the data is fetched.
Validation is the scoring protocol: the whole split as one sequence, in chunks, the state carried
from the split's start, so every token after the first is predicted once from all tokens before it.

Under data-parallel training each process trains on its shard of every minibatch (see
`rnnlm.batches`). Validation cannot be sharded without breaking the protocol: the state at any
point depends on every token before it. So rank 0 scores the whole split and the other ranks score
nothing; the module sums negative log-likelihood and token counts over the ranks, so the split is
scored exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from rnnlm.neural.batches import BatchSampler, Scheme

Batch = tuple[torch.Tensor, torch.Tensor]


def _as_long(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.int64))


class EpochMinibatches(Sampler):
    """Yields the (inputs, labels) arrays of the epoch Lightning last announced via `set_epoch`."""

    def __init__(self, batches: BatchSampler) -> None:
        self.batches, self.epoch = batches, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return iter(self.batches.epoch(self.epoch))


class AsTensors(Dataset):
    """With `EpochMinibatches` as sampler, each "index" is a minibatch: make it tensors."""

    def __getitem__(self, item: tuple[np.ndarray, np.ndarray]) -> Batch:
        return _as_long(item[0]), _as_long(item[1])


class SplitChunks(IterableDataset):
    """A split as one row, `(1, chunk)` inputs and labels, covering tokens 1..N-1 once."""

    def __init__(self, ids: np.ndarray, chunk: int) -> None:
        self.ids, self.chunk = ids, chunk

    def __iter__(self) -> Iterator[Batch]:
        last = len(self.ids) - 1  # the final token is a label only
        for start in range(0, last, self.chunk):
            stop = min(start + self.chunk, last)
            yield (_as_long(self.ids[start:stop])[None],
                   _as_long(self.ids[start + 1 : stop + 1])[None])


class TokenDataModule(pl.LightningDataModule):
    def __init__(self, train_ids: np.ndarray, val_ids: np.ndarray, batch_size: int,
                 num_steps: int, scheme: Scheme, seed: int, eval_chunk: int = 1024) -> None:
        super().__init__()
        self.train_ids, self.val_ids = train_ids, val_ids
        self.batches = BatchSampler(train_ids, batch_size, num_steps, scheme, seed)
        self.eval_chunk = eval_chunk

    # Each loader draws from its own generator: creating an iterator takes a seed from it, and the
    # global one must stay untouched for dropout (a resumed run creates iterators differently).
    def train_dataloader(self) -> DataLoader:
        batches = self.batches.shard(*self._rank_and_world())
        return DataLoader(AsTensors(), sampler=EpochMinibatches(batches), batch_size=None,
                          generator=torch.Generator())

    def val_dataloader(self) -> DataLoader:
        rank, _ = self._rank_and_world()
        ids = self.val_ids if rank == 0 else self.val_ids[:0]
        return DataLoader(SplitChunks(ids, self.eval_chunk), batch_size=None,
                          generator=torch.Generator())

    def minibatches(self, epoch: int) -> int:
        """Training minibatches in `epoch` (the same on every rank), for the progress bar."""
        return self.batches.minibatches(epoch)

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is None:  # used outside a Trainer: one process
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size
