"""Corpus statistics for reports: sizes, distinct types, out-of-vocabulary rates, top tokens."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow.compute as pc

from rnnlm.text.token_files import TokenCounts
from rnnlm.text.vocab import UNK_ID, Vocab


def split_stats(counts: TokenCounts, unknown: np.ndarray) -> dict[str, float | int]:
    """Tokens, distinct types and the share of tokens the vocabulary maps to `<unk>` (`unknown`:
    which dictionary entries it does)."""
    tokens = counts.tokens
    return {
        "tokens": tokens,
        "types": counts.types,
        # Exactly the mean of (id == <unk>) over the split's ids: both are one rounding of k / n.
        "oov_rate": int(counts.counts[unknown].sum()) / tokens if tokens else 0.0,
    }


def corpus_report(counts: Mapping[str, TokenCounts], vocab: Vocab, top: int = 10
                  ) -> dict[str, object]:
    # Every entry but <unk>; the top ones picked in Arrow, without a Python object per entry.
    table = vocab.to_table().slice(1).select(["token", "count"])
    order = [("count", "descending"), ("token", "ascending")]
    if table.num_rows:  # select_k fails on an empty table (a vocabulary of <unk> alone)
        table = table.take(pc.select_k_unstable(table, top, order))
    best = table.sort_by(order)
    # The splits of one token directory share their dictionary: look it up once, not per split
    # (with millions of words, each lookup hashes the whole vocabulary).
    unknown: dict[int, np.ndarray] = {}
    for split in counts.values():
        if id(split.dictionary) not in unknown:
            unknown[id(split.dictionary)] = vocab.lookup_table(split.dictionary) == UNK_ID
    return {
        "vocab_size": len(vocab),
        "splits": {name: split_stats(split, unknown[id(split.dictionary)])
                   for name, split in counts.items()},
        "top_tokens": best.to_pylist(),
    }
