"""How many characters of the cleaned text a split's scored tokens cover: the denominator of
bits per character, the one scale on which char, word and subword models of a text compare.

A scored token (every token of the split after the first) covers its own characters, and at
word level also the one separator (a space) before it, which the word tokens leave out. At every
level the document separator token counts as one character, as it does at char level, and at
bpe level an `<unk>` (a character the training split lacks) counts as the one character it
replaced. At char level a token is a character, so the count is the split's tokens less one and
bits per character is log2 of the perplexity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rnnlm.text.bpe import UNK
from rnnlm.text.token_files import iter_indices, read_dictionary
from rnnlm.text.tokenizers import Level


def token_characters(dictionary: pa.Array, level: Level, separator: str | None) -> np.ndarray:
    """The characters each dictionary entry covers (int64, one per entry)."""
    lengths = pc.utf8_length(dictionary.cast(pa.string())).to_numpy(zero_copy_only=False)
    lengths = lengths.astype(np.int64) + (1 if level == "word" else 0)
    specials: Sequence[str] = [*([separator] if separator else []),
                               *([UNK] if level == "bpe" else [])]
    if specials:
        one = pc.is_in(dictionary, value_set=pa.array(specials, pa.string()))
        lengths[one.to_numpy(zero_copy_only=False)] = 1
    return lengths


def covered_characters(directory: str | os.PathLike[str], split: str, level: Level,
                       separator: str | None) -> int:
    """The characters the split's scored tokens cover, read from the token files (before the
    vocabulary maps rare tokens to <unk>, which would lose their lengths)."""
    lengths = token_characters(read_dictionary(directory), level, separator)
    total, first = 0, None
    for indices in iter_indices(directory, split):
        if first is None and len(indices):
            first = int(lengths[indices[0]])
        total += int(lengths[indices].sum())
    return total - (first or 0)
