"""Bits per character: at char level log2 of the perplexity; at word and bpe level over the
characters of the same text, so the three levels of one corpus compare."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from rnnlm.errors import RnnlmError
from rnnlm.scoring import bits_per_character
from rnnlm.text.bpe import tokenize_bpe_file
from rnnlm.text.characters import covered_characters, token_characters
from rnnlm.text.splits import SPLITS, split_bounds
from rnnlm.text.token_files import num_tokens, read_dictionary, read_indices, tokenize_file

# As the d2l cleaning leaves text: lower-case words, one space between them.
TEXT = ("the time traveller for so it will be convenient to speak of him was expounding a "
        "recondite matter to us his grey eyes shone and twinkled and his usually pale face was "
        "flushed and animated the fire burned brightly and the soft radiance of the "
        "incandescent lights in the lilies of silver caught the bubbles ") * 40
TEXT = TEXT.strip()


def three_levels(tmp_path: Path, text: str, separator: str | None = None) -> dict[str, Path]:
    src = tmp_path / "clean.txt"
    src.write_text(text, encoding="utf-8")
    out = {}
    for level in ("char", "word"):
        out[level] = tmp_path / level
        tokenize_file(src, out[level], level, 0.8, 0.1, separator=separator)
    out["bpe"] = tmp_path / "bpe"
    tokenize_bpe_file(src, out["bpe"], 300, 0.8, 0.1, separator=separator)
    return out


def test_at_char_level_bits_per_character_is_log2_of_the_perplexity(tmp_path) -> None:
    directory = three_levels(tmp_path, TEXT)["char"]
    for split in SPLITS:
        scored = num_tokens(directory, split) - 1
        assert covered_characters(directory, split, "char", None) == scored
        for perplexity in (1.0, 3.9002479159843304, 27.0):
            assert bits_per_character(perplexity, scored, scored) == pytest.approx(
                math.log2(perplexity), rel=1e-15, abs=1e-15)


def first_token_characters(directory: Path, split: str, level, separator) -> int:
    lengths = token_characters(read_dictionary(directory), level, separator)
    return int(lengths[read_indices(directory, split, 1)[0]])


def test_the_three_levels_count_the_characters_of_the_same_text(tmp_path) -> None:
    levels = three_levels(tmp_path, TEXT)
    b1, b2 = split_bounds(len(TEXT), 0.8, 0.1)
    texts = {"train": TEXT[:b1], "val": TEXT[b1:b2], "test": TEXT[b2:]}
    for level, directory in levels.items():
        covered = {split: covered_characters(directory, split, level, None) for split in SPLITS}
        first = {split: first_token_characters(directory, split, level, None)
                 for split in SPLITS}
        # Every character of the text counts once (a word: itself and the space before it,
        # which the text's first word lacks).
        assert sum(covered.values()) + sum(first.values()) == len(TEXT) + (level == "word")
        if level != "word":  # char and bpe split the text at the same characters
            for split in SPLITS:
                assert covered[split] + first[split] == len(texts[split])
        assert (level == "char") == all(n == 1 for n in first.values())
    # Word splits hold the same fractions of the words: their characters differ from the
    # char level's by the boundaries' drift, under a percent here.
    for split in ("val", "test"):
        words = covered_characters(levels["word"], split, "word", None)
        chars = covered_characters(levels["char"], split, "char", None)
        assert 0 < abs(words - chars) / chars < 0.01


def test_a_document_separator_counts_as_one_character_at_every_level(tmp_path) -> None:
    text = "<eod>".join([TEXT[:4000], TEXT[4000:8000], TEXT[8000:]])
    characters = len(text) - 2 * 4  # each separator counts as one
    for level, directory in three_levels(tmp_path, text, separator="<eod>").items():
        total = sum(covered_characters(directory, s, level, "<eod>")
                    + first_token_characters(directory, s, level, "<eod>") for s in SPLITS)
        if level == "word":  # counted: a space before the text's first word and before the
            # word after each separator, which has none (both separators cut a word here)
            assert total == characters + 1 + 2
        else:
            assert total == characters


def test_no_characters_is_refused() -> None:
    with pytest.raises(RnnlmError, match="cover 0 characters"):
        bits_per_character(3.0, 10, 0)
