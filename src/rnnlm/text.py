"""Cleaning raw text: the book's letters-only lowercasing, or light Unicode normalisation.

The `d2l` mode equals `re.sub('[^A-Za-z]+', ' ', text).lower()` over the whole text, but runs on
bytes through a 256-entry translation table and a numpy run-collapse, in bounded chunks: no Python
loop per character, no regex over hundreds of megabytes, and little memory beyond the output.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from typing import Literal

import numpy as np

from .errors import RnnlmError

CleanMode = Literal["d2l", "none", "normalize"]

_SPACE = ord(" ")
# Letters map to their lowercase; every other byte (including all UTF-8 multi-byte units,
# which are >= 0x80 and so never letters) maps to a space, as '[^A-Za-z]' does per character.
_D2L_TABLE = bytes(
    b + 32 if 65 <= b <= 90 else b if 97 <= b <= 122 else _SPACE for b in range(256)
)
_CHUNK = 1 << 16  # small enough for the numpy temporaries to stay in cache

_GUTENBERG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_GUTENBERG_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)


def decode_utf8(data: bytes, source: str = "input") -> str:
    """Decode UTF-8 strictly; invalid input is an error naming the byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RnnlmError(
            f"{source} is not valid UTF-8 (byte {exc.start}: {exc.reason}); "
            "convert it to UTF-8 or point data.urls at a UTF-8 text file"
        ) from None


def strip_gutenberg(text: str) -> str:
    """Keep only the body between Project Gutenberg's START and END markers, when present."""
    start = _GUTENBERG_START.search(text)
    end = _GUTENBERG_END.search(text, start.end() if start else 0)
    if start is None and end is None:
        warnings.warn("clean.strip_gutenberg is set but the text has no Project Gutenberg "
                      "START/END markers: nothing was stripped", stacklevel=2)
    return text[start.end() if start else 0 : end.start() if end else len(text)]


def clean_d2l(text: str) -> str:
    """`re.sub('[^A-Za-z]+', ' ', text).lower()`, vectorised, one chunk of characters at a time.

    Each chunk is encoded to UTF-8, where this equals the str regex: a multi-byte character is a
    run of non-letter bytes, and any run collapses to a single space.
    """
    # Every character becomes at most one byte, so len(text) bounds the output.
    cleaned = np.empty(len(text), dtype=np.uint8)
    size = 0
    previous_was_space = False
    for start in range(0, len(text), _CHUNK):
        chunk = text[start : start + _CHUNK].encode("utf-8").translate(_D2L_TABLE)
        mapped = np.frombuffer(chunk, dtype=np.uint8)
        is_space = mapped == _SPACE
        keep = np.ones(len(mapped), dtype=bool)
        # A space directly after a space (also across the chunk boundary) is dropped.
        keep[1:] = ~(is_space[1:] & is_space[:-1])
        keep[0] = not (is_space[0] and previous_was_space)
        kept = mapped[keep]
        cleaned[size : size + len(kept)] = kept
        size += len(kept)
        previous_was_space = bool(is_space[-1])
    return str(cleaned[:size].data, "ascii")


def clean_text(text: str, mode: CleanMode = "d2l", gutenberg: bool = False) -> str:
    """Clean `text` by `mode`; empty output is an error (nothing to model)."""
    if gutenberg:
        text = strip_gutenberg(text)
    if mode == "d2l":
        cleaned = clean_d2l(text)
    elif mode == "normalize":
        cleaned = " ".join(unicodedata.normalize("NFKC", text).split())
    elif mode == "none":
        cleaned = text
    else:
        raise RnnlmError(f"unknown clean mode {mode!r}; use one of d2l, none, normalize")
    if not cleaned.strip():
        raise RnnlmError(
            f"the text is empty after cleaning (mode {mode!r}, gutenberg={gutenberg}); "
            "check the downloaded file or choose another clean.mode"
        )
    return cleaned
