"""Reading a large UTF-8 file in bounded pieces that never split a character.

The streaming stages read a byte range of a file piece by piece: each piece is checked to be
UTF-8 (an error names the absolute byte offset, as decoding the whole file would) and ends where
a `cut` function says, so that callers can also keep words or separators whole. What lies past
the cut is carried into the next piece.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

from rnnlm.errors import RnnlmError

CHUNK_BYTES = 1 << 24  # 16 MiB: large enough to amortise per-piece work, small next to the corpus

Cut = Callable[[bytes], int]


def utf8_cut(data: bytes) -> int:
    """The end of the last complete UTF-8 character in `data` (len(data) if it ends whole)."""
    n = len(data)
    i = n - 1
    # At most 3 continuation bytes (10xxxxxx) precede the end of a character's lead byte.
    while i >= 0 and n - i <= 4 and data[i] & 0xC0 == 0x80:
        i -= 1
    if i < 0 or n - i > 4:
        return n  # not UTF-8 near the end: let the strict decode report where
    lead = data[i]
    width = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
    return n if i + width <= n else i


def check_utf8(piece: bytes, offset: int, source: str) -> None:
    """Raise the error decoding the whole file would give if `piece` (at `offset`) is not UTF-8."""
    if piece.isascii():
        return
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RnnlmError(
            f"{source} is not valid UTF-8 (byte {offset + exc.start}: {exc.reason}); "
            "convert it to UTF-8, or point data.urls (or the data.documents entry) at a UTF-8 "
            "text file"
        ) from None


def read_pieces(
    f: BinaryIO,
    start: int,
    stop: int,
    chunk_size: int | None = None,
    cut: Cut = utf8_cut,
    source: str = "input",
) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, piece) covering bytes [start, stop) of `f` in order, each valid UTF-8.

    Every piece but the last ends at `cut(data)`, where `data` is what was carried plus about
    `chunk_size` new bytes (default CHUNK_BYTES); a cut of 0 reads on (a word longer than a
    chunk stays whole).
    """
    if chunk_size is None:
        chunk_size = CHUNK_BYTES  # looked up now, so that tests can make every piece tiny
    if chunk_size < 1:
        raise RnnlmError(f"chunk_size must be at least 1 byte, got {chunk_size}")
    f.seek(start)
    carry = b""
    offset = start  # where `carry` begins in the file
    position = start  # how far the file has been read
    while True:
        new = f.read(min(chunk_size, stop - position)) if position < stop else b""
        if not new:
            break
        position += len(new)
        data = carry + new
        end = cut(data)
        if end > 0:
            check_utf8(data[:end], offset, source)
            yield offset, data[:end]
        carry, offset = data[end:], offset + end
    if carry:
        check_utf8(carry, offset, source)
        yield offset, carry
