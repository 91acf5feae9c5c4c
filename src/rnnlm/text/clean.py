"""Cleaning text: the book's letters-only lowercasing, or light Unicode normalisation, of a
string or of a corpus file read piece by piece.

The `d2l` mode equals `re.sub('[^A-Za-z]+', ' ', text).lower()` over the whole text, but runs on
bytes through a 256-entry translation table and a numpy run-collapse, in bounded chunks: no Python
loop per character, no regex over hundreds of megabytes, and little memory beyond the output.

A file is cleaned piece by piece and the output equals `clean_text` of the whole text; memory stays
bounded by the piece size whatever the corpus size. Each mode has a cleaner with a little state
carried across pieces: whether the output ends with a space (d2l), the word that a piece cut in two
(normalize). A corpus of several documents is cleaned document by document, with a separator
written between them.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from rnnlm.errors import RnnlmError
from rnnlm.io import atomic_path
from rnnlm.text.gutenberg import gutenberg_body, strip_gutenberg
from rnnlm.text.pieces import Cut, check_utf8, read_pieces, utf8_cut

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
    """One clean mode, in both forms: a whole string, or a file fed piece by piece."""

    nonblank: bool  # some output so far is not whitespace

    @property
    def cut(self) -> Cut:
        """Where a piece may end so that feeding it alone cleans it as the whole text would."""
        ...

    @staticmethod
    def clean(text: str) -> str: ...

    def feed(self, piece: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class D2lCleaner:
    cut = staticmethod(utf8_cut)

    def __init__(self) -> None:
        self.after_space = False
        self.nonblank = False

    @staticmethod
    def clean(text: str) -> str:
        return clean_d2l(text)

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

    @staticmethod
    def clean(text: str) -> str:
        return text

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

    @staticmethod
    def clean(text: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", text).split())

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


CLEANERS: dict[CleanMode, Callable[[], Cleaner]] = {
    "d2l": D2lCleaner, "none": VerbatimCleaner, "normalize": NormalizeCleaner}


def make_cleaner(mode: CleanMode) -> Cleaner:
    if mode not in CLEANERS:
        raise RnnlmError(f"unknown clean mode {mode!r}; use one of {', '.join(CLEANERS)}")
    return CLEANERS[mode]()


def clean_text(text: str, mode: CleanMode = "d2l", gutenberg: bool = False) -> str:
    """Clean `text` by `mode`; empty output is an error (nothing to model)."""
    cleaner = make_cleaner(mode)
    if gutenberg:
        text = strip_gutenberg(text)
    cleaned = cleaner.clean(text)
    if not cleaned.strip():
        raise empty_error(mode, gutenberg)
    return cleaned


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
