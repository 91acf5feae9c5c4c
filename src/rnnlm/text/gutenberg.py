"""Project Gutenberg's START/END marker lines: the body between them, in a string or a file.

The body is `text[start.end() : end.start()]` for the first START line and the first END line
after it (or anywhere, without a START line): from the end of the START line (its newline
included) to the beginning of the END line.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import BinaryIO

import numpy as np

from rnnlm.text.pieces import read_pieces

_START = r"\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG"
_END = r"\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG"
_START_LINE = re.compile(f"^{_START}.*$", re.M | re.I)
_END_LINE = re.compile(f"^{_END}.*$", re.M | re.I)
_START_PREFIX = re.compile(_START, re.I)
_END_PREFIX = re.compile(_END, re.I)
# Bytes enough for the longest prefix: 36 characters of at most 4 bytes (re.I matches e.g. the
# Kelvin sign for "k", so the bytes are decoded and matched as text, like the whole-text search).
_PREFIX_BYTES = 160
_NEWLINE, _STAR = ord("\n"), ord("*")


def _no_markers(source: str) -> None:
    # Naming the source also keeps Python from showing only the first of several such warnings.
    warnings.warn(f"clean.strip_gutenberg is set but {source} has no Project Gutenberg "
                  "START/END markers: nothing was stripped", stacklevel=3)


def strip_gutenberg(text: str) -> str:
    """Keep only the body between Project Gutenberg's START and END markers, when present."""
    start = _START_LINE.search(text)
    end = _END_LINE.search(text, start.end() if start else 0)
    if start is None and end is None:
        _no_markers("the text")
    return text[start.end() if start else 0 : end.start() if end else len(text)]


def _line_end(fd: int, offset: int, stop: int) -> int:
    """Offset of the first newline at or after `offset`, or `stop`."""
    while offset < stop:
        block = os.pread(fd, min(1 << 16, stop - offset), offset)
        found = block.find(b"\n")
        if found >= 0:
            return offset + found
        offset += len(block)
    return stop


def gutenberg_body(
    f: BinaryIO, start: int, stop: int, chunk_size: int | None = None, source: str = "input"
) -> tuple[int, int]:
    """The byte range of the body in bytes [start, stop) of `f`, checking that range is UTF-8.

    Only lines starting with '*' can be markers: numpy finds them, and each one's first bytes
    are matched against the marker patterns.
    """
    fd = f.fileno()
    body_start: int | None = None
    end_any: int | None = None  # the first END line anywhere (used when there is no START)
    end_after: int | None = None  # the first END line after the START line
    line_start = True  # the next piece begins a line
    for offset, piece in read_pieces(f, start, stop, chunk_size, source=source):
        data = np.frombuffer(piece, dtype=np.uint8)
        stars = np.flatnonzero((data[1:] == _STAR) & (data[:-1] == _NEWLINE)) + 1
        if line_start and data[0] == _STAR:
            stars = np.concatenate([[0], stars])
        line_start = bool(data[-1] == _NEWLINE)
        for at in (offset + stars).tolist():
            if end_after is not None:
                break
            prefix = os.pread(fd, min(_PREFIX_BYTES, stop - at), at)
            line = prefix.decode("utf-8", errors="ignore")
            if body_start is None and _START_PREFIX.match(line):
                body_start = _line_end(fd, at, stop)
            elif _END_PREFIX.match(line):
                if body_start is not None and at > body_start:
                    end_after = at
                elif end_any is None:
                    end_any = at
    if body_start is None and end_any is None:
        _no_markers(source)
    end = end_after if body_start is not None else end_any
    return (start if body_start is None else body_start), (stop if end is None else end)
