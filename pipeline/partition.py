"""Stage partition: encode each split to memory-mappable int32 ids; report minibatch counts."""

from typing import get_args

from rnnlm.io import write_json
from rnnlm.layout import PARTITION_REPORT, TOKENS_DIR, VOCAB, ids_path
from rnnlm.neural.batches import Scheme, count_batches, require_one_batch, tokens_left_over
from rnnlm.settings import Params
from rnnlm.text.ids import encode_splits
from rnnlm.text.splits import SPLITS
from rnnlm.text.token_files import num_tokens
from rnnlm.text.vocab import Vocab

from ._stage import run_stage


def scheme_report(n_tokens: int, batch_size: int, num_steps: int) -> dict[str, object]:
    """Minibatches and left-over tokens per epoch; both vary with the epoch's random offset."""
    report: dict[str, object] = {}
    for scheme in get_args(Scheme):
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
    sizes = {name: num_tokens(TOKENS_DIR, name) for name in SPLITS}
    # Fail before writing anything if a split cannot yield a single minibatch.
    for name, size in sizes.items():
        require_one_batch(size, p.batch_size, p.num_steps, p.scheme, f"the {name} split")
    encode_splits(vocab, TOKENS_DIR, {name: ids_path(name) for name in SPLITS})
    write_json(PARTITION_REPORT, {
        "batch_size": p.batch_size,
        "num_steps": p.num_steps,
        "splits": {name: {"tokens": n, **scheme_report(n, p.batch_size, p.num_steps)}
                   for name, n in sizes.items()},
    })


if __name__ == "__main__":
    run_stage("partition", partition)
