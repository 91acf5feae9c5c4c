"""Zipf's law on a token stream: frequency against rank of its n-grams, as the book plots it."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from rnnlm.figures import pyplot, save_png
from rnnlm.ngram.counts import count_ngrams


def zipf_figure(path: str | os.PathLike[str], streams: Mapping[str, np.ndarray],
                max_order: int = 3, note: str = "") -> None:
    """Frequency against rank on log-log axes for unigrams..max_order-grams, as the book plots,
    one panel per token stream (`streams`: what the tokens are -> their ids)."""
    fig, axes = pyplot().subplots(1, len(streams), figsize=(6 * len(streams), 4.5), squeeze=False)
    for ax, (what, ids) in zip(axes[0], streams.items(), strict=True):
        for n in range(1, max_order + 1):
            _, counts = count_ngrams(ids, n)
            freqs = np.sort(counts)[::-1]
            ax.loglog(np.arange(1, len(freqs) + 1), freqs, label=f"{n}-gram")
        ax.set_xlabel("rank (log)")
        ax.set_ylabel("frequency (log)")
        ax.set_title(f"Zipf's law: {what} of the training split{note}")
        ax.legend()
    save_png(fig, path)
