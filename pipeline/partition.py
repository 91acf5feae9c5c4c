"""Stage partition: encode each split to memory-mappable int32 ids; report minibatch counts."""

import numpy as np

from rnnlm.batches import count_batches, require_one_batch, tokens_left_over
from rnnlm.io import atomic_path, write_json
from rnnlm.tokens import SPLITS, read_tokens
from rnnlm.vocab import Vocab

from ._stage import run_stage
from .paths import REPORTS, VOCAB, ids_path, tokens_path
from .settings import Params


def scheme_report(n_tokens: int, batch_size: int, num_steps: int) -> dict[str, object]:
    """Minibatches and left-over tokens per epoch; both vary with the epoch's random offset."""
    report: dict[str, object] = {}
    for scheme in ("random", "sequential"):
        batches = [count_batches(n_tokens, batch_size, num_steps, scheme, o)
                   for o in range(num_steps)]
        left = [tokens_left_over(n_tokens, batch_size, num_steps, scheme, o)
                for o in range(num_steps)]
        report[scheme] = {
            "minibatches_per_epoch": {"min": min(batches), "max": max(batches)},
            "tokens_left_over": {"min": min(left), "max": max(left)},
        }
    return report


def partition(params: Params) -> None:
    p = params.partition
    vocab = Vocab.load(VOCAB)
    ids = {name: vocab.encode(read_tokens(tokens_path(name))) for name in SPLITS}
    # Fail before writing anything if a split cannot yield a single minibatch.
    for name, array in ids.items():
        require_one_batch(len(array), p.batch_size, p.num_steps, p.scheme, f"the {name} split")
    for name, array in ids.items():
        with atomic_path(ids_path(name)) as tmp, tmp.open("wb") as f:
            np.save(f, array.astype(np.int32))
    write_json(REPORTS / "partition.json", {
        "batch_size": p.batch_size,
        "num_steps": p.num_steps,
        "splits": {name: {"tokens": len(a), **scheme_report(len(a), p.batch_size, p.num_steps)}
                   for name, a in ids.items()},
    })


if __name__ == "__main__":
    run_stage("partition", partition)
