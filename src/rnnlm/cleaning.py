"""Cleaning a corpus file piece by piece: the output equals `clean_text` of the whole text.

Memory stays bounded by the piece size whatever the corpus size. Each mode has a cleaner with a
little state carried across pieces: whether the output ends with a space (d2l), the word that a
piece cut in two (normalize). A corpus of several documents is cleaned document by document,
with a separator written between them.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .chunks import Cut, read_pieces, utf8_cut
from .errors import RnnlmError
from .gutenberg import gutenberg_body
from .io import atomic_path
from .text import CleanMode, d2l_bytes, empty_error


@dataclass(frozen=True)
class Span:
    """One document: bytes [start, stop) of the corpus file, and a name for messages."""

    start: int
    stop: int
    name: str


def document_spans(manifest: Mapping[str, Any]) -> list[Span] | None:
    """The documents a download manifest lists (None for a single-file manifest)."""
    documents = manifest.get("documents")
    if not documents:
        return None
    return [Span(int(d["offset"]), int(d["offset"]) + int(d["bytes"]), str(d["source"]))
            for d in documents]


class Cleaner(Protocol):
    cut: Cut
    nonblank: bool  # some output so far is not whitespace

    def feed(self, piece: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class D2lCleaner:
    cut = staticmethod(utf8_cut)

    def __init__(self) -> None:
        self.after_space = False
        self.nonblank = False

    def feed(self, piece: bytes) -> bytes:
        out, self.after_space = d2l_bytes(piece, self.after_space)
        self.nonblank = self.nonblank or out.count(b" ") < len(out)
        return out

    def finish(self) -> bytes:
        return b""


class VerbatimCleaner:
    cut = staticmethod(utf8_cut)

    def __init__(self) -> None:
        self.nonblank = False

    def feed(self, piece: bytes) -> bytes:
        # str.strip, not bytes.strip: it also knows the Unicode spaces.
        self.nonblank = self.nonblank or bool(piece.decode("utf-8").strip())
        return piece

    def finish(self) -> bytes:
        return b""


def ascii_cut(data: bytes) -> int:
    """Where the last ASCII character begins: NFKC never joins an ASCII character to the text
    before it (it has no combining class and is never the second of a composition)."""
    for tail in (256, len(data)):
        found = np.flatnonzero(np.frombuffer(data[-tail:], dtype=np.uint8) < 0x80)
        if len(found):
            return max(len(data) - tail, 0) + int(found[-1])
    return 0


class NormalizeCleaner:
    """NFKC, then words joined by single spaces; the last word of a piece may continue."""

    cut = staticmethod(ascii_cut)

    def __init__(self) -> None:
        self.nonblank = False
        self.partial = ""  # a word the end of the piece may have cut in two

    def _join(self, words: list[str]) -> bytes:
        if not words:
            return b""
        out = (" " if self.nonblank else "") + " ".join(words)
        self.nonblank = True
        return out.encode("utf-8")

    def feed(self, piece: bytes) -> bytes:
        text = self.partial + unicodedata.normalize("NFKC", piece.decode("utf-8"))
        words = text.split()
        self.partial = words.pop() if words and not text[-1].isspace() else ""
        return self._join(words)

    def finish(self) -> bytes:
        words, self.partial = [self.partial] if self.partial else [], ""
        return self._join(words)


def make_cleaner(mode: CleanMode) -> Cleaner:
    cleaners: dict[str, type[Cleaner]] = {
        "d2l": D2lCleaner, "none": VerbatimCleaner, "normalize": NormalizeCleaner}
    if mode not in cleaners:
        raise RnnlmError(f"unknown clean mode {mode!r}; use one of d2l, none, normalize")
    return cleaners[mode]()


class _SeparatorCheck:
    """Fails when a document's cleaned text contains the separator, or ends so that a separator
    would be found in the wrong place (separator "aa" after a document that ends with "a")."""

    def __init__(self, separator: bytes) -> None:
        self.separator = separator
        self.tail = b""

    def feed(self, out: bytes, name: str) -> None:
        if not out:
            return
        if self.separator in self.tail + out:
            raise RnnlmError(f"{name} contains the document separator "
                             f"{self.separator.decode()!r} after cleaning: choose another "
                             "data.separator")
        keep = len(self.separator) - 1
        self.tail = (self.tail + out)[-keep:] if keep else b""

    def end_document(self, name: str) -> None:
        if (self.tail + self.separator).find(self.separator) != len(self.tail):
            raise RnnlmError(f"the end of {name} runs into the document separator "
                             f"{self.separator.decode()!r}: choose another data.separator")
        self.tail = b""


def _cleaned(cleaner: Cleaner, pieces: Iterator[tuple[int, bytes]]) -> Iterator[bytes]:
    for _, piece in pieces:
        yield cleaner.feed(piece)
    yield cleaner.finish()


def clean_file(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    mode: CleanMode = "d2l",
    gutenberg: bool = False,
    documents: Sequence[Span] | None = None,
    separator: str | None = None,
    chunk_size: int | None = None,
) -> None:
    """Write the cleaned `src` to `dst` (atomically), `separator` between the documents.

    `documents` defaults to the whole file as one. Each document is cleaned on its own (its
    Project Gutenberg markers stripped, when `gutenberg`); invalid UTF-8 and a document empty
    after cleaning are errors naming it.
    """
    if documents is None:
        documents = [Span(0, os.path.getsize(src), str(src))]
    if len(documents) > 1 and not separator:
        raise RnnlmError("several documents need a separator to be told apart")
    joint = separator.encode("utf-8") if separator else b""
    check = _SeparatorCheck(joint) if joint else None
    with atomic_path(dst) as tmp, open(tmp, "wb") as out, open(src, "rb") as f:
        for number, doc in enumerate(documents):
            what = doc.name if len(documents) == 1 else f"document {number + 1} ({doc.name})"
            # UTF-8 errors give byte offsets in `src`: say where in it the document lies.
            where = what if len(documents) == 1 else (
                f"{what}, at bytes {doc.start}-{doc.stop} of {src},")
            if number:
                out.write(joint)
            start, stop = doc.start, doc.stop
            if gutenberg:
                start, stop = gutenberg_body(f, start, stop, chunk_size, source=where)
            cleaner = make_cleaner(mode)
            pieces = read_pieces(f, start, stop, chunk_size, cleaner.cut, source=where)
            for cleaned in _cleaned(cleaner, pieces):
                if check is not None:
                    check.feed(cleaned, what)
                out.write(cleaned)
            if not cleaner.nonblank:
                raise empty_error(mode, gutenberg, "the text" if len(documents) == 1 else what)
            if check is not None and number + 1 < len(documents):
                check.end_document(what)
