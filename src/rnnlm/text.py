"""Cleaning raw text: the book's letters-only lowercasing, or light Unicode normalisation.

The `d2l` mode equals `re.sub('[^A-Za-z]+', ' ', text).lower()` over the whole text, but runs on
bytes through a 256-entry translation table and a numpy run-collapse, in bounded chunks: no Python
loop per character, no regex over hundreds of megabytes, and little memory beyond the output.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

import numpy as np

from .chunks import check_utf8
from .errors import RnnlmError
from .gutenberg import strip_gutenberg

CleanMode = Literal["d2l", "none", "normalize"]

_SPACE = ord(" ")
# Letters map to their lowercase; every other byte (including all UTF-8 multi-byte units,
# which are >= 0x80 and so never letters) maps to a space, as '[^A-Za-z]' does per character.
_D2L_TABLE = bytes(
    b + 32 if 65 <= b <= 90 else b if 97 <= b <= 122 else _SPACE for b in range(256)
)
_CHUNK = 1 << 16  # small enough for the numpy temporaries to stay in cache


def decode_utf8(data: bytes, source: str = "input") -> str:
    """Decode UTF-8 strictly; invalid input is an error naming the byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        check_utf8(data, 0, source)  # raises the project's message, naming the byte
        raise


def empty_error(mode: str, gutenberg: bool, what: str = "the text") -> RnnlmError:
    return RnnlmError(
        f"{what} is empty after cleaning (mode {mode!r}, gutenberg={gutenberg}); "
        "check the downloaded file or choose another clean.mode"
    )


def d2l_bytes(data: bytes, after_space: bool = False) -> tuple[bytes, bool]:
    """The d2l cleaning of UTF-8 `data`, and whether the output ends with a space.

    A multi-byte character is a run of non-letter bytes, and any run collapses to a single
    space, so this equals the str regex. `after_space`: the output so far ends with a space
    (a run that crossed the boundary of the previous piece must stay one space).
    """
    mapped = np.frombuffer(data.translate(_D2L_TABLE), dtype=np.uint8)
    # Every byte becomes at most one byte, so len(data) bounds the output.
    cleaned = np.empty(len(mapped), dtype=np.uint8)
    size = 0
    for start in range(0, len(mapped), _CHUNK):
        chunk = mapped[start : start + _CHUNK]
        is_space = chunk == _SPACE
        keep = np.empty(len(chunk), dtype=bool)
        # A space directly after a space (also across the chunk boundary) is dropped.
        np.logical_not(is_space[1:] & is_space[:-1], out=keep[1:])
        keep[0] = not (is_space[0] and after_space)
        kept = chunk[keep]
        cleaned[size : size + len(kept)] = kept
        size += len(kept)
        after_space = bool(is_space[-1])
    return cleaned[:size].tobytes(), after_space


def clean_d2l(text: str) -> str:
    """`re.sub('[^A-Za-z]+', ' ', text).lower()`, vectorised, one chunk of characters at a time."""
    # Every character becomes at most one byte, so len(text) bounds the output: one buffer,
    # filled in place, rather than a list of pieces joined into a copy.
    cleaned = np.empty(len(text), dtype=np.uint8)
    size = 0
    after_space = False
    for start in range(0, len(text), _CHUNK):
        piece, after_space = d2l_bytes(text[start : start + _CHUNK].encode("utf-8"), after_space)
        cleaned[size : size + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        size += len(piece)
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
        raise empty_error(mode, gutenberg)
    return cleaned
