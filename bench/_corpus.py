"""The synthetic corpora's vocabulary, shared by the data benchmarks."""

from __future__ import annotations

import numpy as np


def zipf_lexicon(rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """30,000 random lowercase words (50 capitalised) plus a few with punctuation, digits and a
    non-ASCII letter, and their Zipf's-law probabilities (the i-th word's is 1/i, normalised)."""
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    lengths = rng.integers(1, 11, size=30_000)
    lexicon = ["".join(rng.choice(letters, size=n)) for n in lengths]
    lexicon[:50] = [w.capitalize() for w in lexicon[:50]]
    lexicon += ["--", "1898", "Mr.", "naïve", "(so", "said:"]
    weights = 1.0 / np.arange(1, len(lexicon) + 1)
    return lexicon, weights / weights.sum()
