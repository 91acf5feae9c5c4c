"""The tokenizer's splits computed on the whole text, and by the streaming tokenizer in pieces."""

from __future__ import annotations

from pathlib import Path

from rnnlm.errors import RnnlmError
from rnnlm.text.splits import SPLITS
from rnnlm.text.token_files import read_tokens, tokenize_file
from rnnlm.text.tokenizers import tokenize


def expected_splits(text: str, level: str, reverse: bool,
                    separator: str | None = None) -> dict[str, list[str]]:
    """Whole-text tokens split 60/20/20; a separator is one token between the segments."""
    if separator and (level == "word" or len(separator) > 1):
        values: list[str] = []
        for i, segment in enumerate(text.split(separator)):
            values += ([separator] if i else []) + tokenize(segment, level).to_pylist()
    else:
        values = tokenize(text, level).to_pylist()  # type: ignore[arg-type]
    if reverse:
        values = values[::-1]
    n = len(values)
    b1, b2 = int(0.6 * n), int(0.8 * n)
    return {"train": values[:b1], "val": values[b1:b2], "test": values[b2:]}


def tokenized_streamed(tmp: Path, text: str, level: str, reverse: bool, size: int,
                       separator: str | None = None) -> dict[str, list[str]] | None:
    (tmp / "clean.txt").write_bytes(text.encode("utf-8"))
    try:
        tokenize_file(tmp / "clean.txt", tmp / "tokens", level, 0.6, 0.2,  # type: ignore[arg-type]
                      reverse, separator, chunk_size=size)
    except RnnlmError:
        return None
    return {name: read_tokens(tmp / "tokens", name).to_pylist() for name in SPLITS}

