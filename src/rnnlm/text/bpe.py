"""Subword tokens (`tokenize.level: bpe`): byte-pair encoding learned on the training split.

The merges are learned by Hugging Face `tokenizers` (its BPE model and trainer), on the text of
the training split only, and saved with the token files as `tokenizer.json` (the library's own
format, which `tokenizers.Tokenizer.from_file` opens). Splitting comes first: the splits are cut
from the cleaned text at the same character positions as at char level, so a BPE model is
scored on exactly the text the char model of the same corpus is (and bits per character compare
the two); each split is then encoded on its own.

Pre-tokenization cuts the text around each run of line breaks (the run is a pre-token of its
own), then before every space (the library's Metaspace with no space prepended): a token never
spans a line break or a space it does not start with, every space, line break and run of them is
kept, and the tokens joined give the text back. Cutting at line breaks keeps the trainer's words
few: without it the last word of a line and the first of the next were one word, and the words
of 90 MB of text were 14 times as many (707,642 distinct against 48,771), which took the trainer
a gigabyte to merge. The dictionary of the token files holds the tokens as text (the marker "▁"
shown as the space it stands for), so `join` is concatenation. A character the training split
never holds becomes `<unk>` (one per such character): no byte fallback. The document separator
is a special token, never split. A text holding the library's own markers (a literal `<unk>`, or
"▁") is refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as Learned

from rnnlm.errors import RnnlmError
from rnnlm.io import atomic_dir
from rnnlm.kernels import index_dtype
from rnnlm.text.pieces import Cut, read_pieces, utf8_cut
from rnnlm.text.splits import SPLITS, check_split_sizes, split_bounds
from rnnlm.text.token_files import ROW_GROUP, indices_table, split_writer, write_dictionary
from rnnlm.text.tokenizers import Level, TokenStream, separator_cut, stream_of

UNK = "<unk>"  # the library's unknown token; the project's vocabulary maps it to its own <unk>
MARKER = "▁"  # Metaspace's stand-in for a space
TOKENIZER_FILE = "tokenizer.json"
ENCODE_BATCH = 8192  # distinct pre-tokens encoded at once (the library's results are large)


def _space_cut(data: bytes) -> int:
    """Just before the last space: a pre-token starts there, so no token is cut in two."""
    return max(data.rfind(b" "), 0)


def _untrained(specials: Sequence[str]) -> Learned:
    model = Learned(models.BPE(unk_token=UNK))
    model.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex("\n+"), behavior="isolated"),
        pre_tokenizers.Metaspace(replacement=MARKER, prepend_scheme="never")])
    model.decoder = decoders.Metaspace(replacement=MARKER, prepend_scheme="never")
    model.add_special_tokens(list(specials))
    return model


def learn(texts: Iterator[str], vocab_size: int, separator: str | None) -> Learned:
    """Merges learned from `texts` (the training split's, in pieces cut before a space) until
    the vocabulary holds `vocab_size` tokens, or no pair is left to merge (the trainer merges
    pairs seen once too)."""
    specials = [UNK, *([separator] if separator else [])]
    model = _untrained(specials)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  show_progress=False)
    model.train_from_iterator(texts, trainer)
    return model


class BpeTokenizer:
    """A learned byte-pair encoding, as one of the project's tokenizers."""

    level: Level = "bpe"

    def __init__(self, learned: str) -> None:
        """`learned`: the library's JSON of the tokenizer (the content of tokenizer.json)."""
        try:
            self.model = Learned.from_str(learned)
        except Exception as exc:  # the library raises a bare Exception on malformed JSON
            raise RnnlmError(f"not a saved BPE tokenizer ({exc}): rerun `dvc repro tokenize`"
                             ) from None
        vocab = sorted(self.model.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
        if [i for _, i in vocab] != list(range(len(vocab))):
            raise RnnlmError("the saved BPE tokenizer's ids are not 0, 1, 2, ...: rerun "
                             "`dvc repro tokenize`")
        self.dictionary = pa.array([t.replace(MARKER, " ") for t, _ in vocab], type=pa.string())
        self.index_type: np.dtype[Any] = np.dtype(index_dtype(len(vocab)))
        self.learned = learned

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BpeTokenizer:
        return cls(Path(path).read_text(encoding="utf-8"))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The ids of the texts' tokens, one text after the other (encoded in parallel)."""
        parts = [np.asarray(e.ids, dtype=self.index_type)
                 for e in self.model.encode_batch(list(texts), add_special_tokens=False)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=self.index_type)

    def encode_large(self, text: bytes, separator: bytes | None) -> np.ndarray:
        """The ids of a large UTF-8 text (a piece of a file), as `encode` gives them.

        A token never spans a space it does not start with, so the text is the concatenation
        of its pre-tokens (the text before the first space, then each space with what follows
        up to the next) and its tokens are theirs. Each distinct pre-token is encoded once (a
        piece holds a few hundred thousand, against millions of occurrences), then their ids
        are gathered per occurrence: far faster than encoding the text whole, and without the
        library's per-token offsets, which for a large piece took gigabytes.
        """
        if separator is None:
            return self._encode_segment(text)
        separator_ids = self.encode([separator.decode("utf-8")])
        out: list[np.ndarray] = []
        for i, segment in enumerate(text.split(separator)):
            if i:
                out.append(separator_ids)
            out.append(self._encode_segment(segment))
        return np.concatenate(out) if out else np.zeros(0, dtype=self.index_type)

    def _encode_segment(self, segment: bytes) -> np.ndarray:
        head, space, tail = segment.partition(b" ")
        ids = [self.encode([head.decode("utf-8")])] if head else []
        if space:
            # The parts between spaces (one string over the bytes, split by Arrow), each then
            # encoded with the space before it; an empty part is a space of its own.
            offsets = pa.py_buffer(np.array([0, len(tail)], dtype=np.int64))
            whole = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets,
                                                                 pa.py_buffer(tail)])
            parts = pc.split_pattern(whole, " ").flatten().dictionary_encode()
            flat, lengths = self._encode_distinct([" " + p for p in
                                                   parts.dictionary.to_pylist()])
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            which = parts.indices.to_numpy(zero_copy_only=False)
            # Occurrence k's ids: flat[starts[which[k]] : starts[which[k]] + lengths[which[k]]].
            counts = lengths[which]
            ends = np.cumsum(counts)
            shift = np.repeat(starts[which] - (ends - counts), counts)
            ids.append(flat[np.arange(int(ends[-1]) if len(ends) else 0) + shift])
        return np.concatenate(ids) if ids else np.zeros(0, dtype=self.index_type)

    def _encode_distinct(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The ids of the texts one after the other, and how many each has.

        Encoded a batch at a time: the library's result for a text holds its tokens, offsets
        and masks besides the ids (about 1.7 KB for a pre-token), and a piece of 16 MiB holds
        some 180,000 distinct ones: 300 MB at once, the most of the stage's peak.
        """
        ids: list[np.ndarray] = []
        lengths: list[int] = []
        for at in range(0, len(texts), ENCODE_BATCH):
            batch = self.model.encode_batch(texts[at:at + ENCODE_BATCH], add_special_tokens=False)
            counts = [len(e.ids) for e in batch]
            ids.append(np.fromiter((t for e in batch for t in e.ids), dtype=self.index_type,
                                   count=sum(counts)))
            lengths += counts
        return (np.concatenate(ids) if ids else np.zeros(0, dtype=self.index_type),
                np.array(lengths, dtype=np.int64))

    def tokenize(self, text: str) -> pa.DictionaryArray:
        return stream_of(self.encode([text]), self.dictionary)

    def join(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)

    def streaming(self, separator: bytes | None, workdir: Path
                  ) -> contextlib.AbstractContextManager[TokenStream]:
        raise RnnlmError("BPE token files are written by rnnlm.text.bpe.tokenize_bpe_file, "
                         "which learns the merges on the training split first")


def _char_starts(piece: bytes, separator: bytes | None) -> np.ndarray:
    """Per byte of `piece`: whether a char-level token starts there (a separator is one)."""
    data = np.frombuffer(piece, dtype=np.uint8)
    starts = (data & 0xC0) != 0x80  # the first byte of each UTF-8 character
    if separator and len(separator.decode()) > 1:
        at = piece.find(separator)
        while at >= 0:
            starts[at + 1 : at + len(separator)] = False
            at = piece.find(separator, at + len(separator))
    return starts


def _refuse_own_markers(window: bytes, source: str) -> None:
    """The library reads a literal <unk> as its unknown token and "▁" as a space: such text
    would be miscounted and not given back."""
    for literal in (UNK, MARKER):
        if literal.encode("utf-8") in window:
            raise RnnlmError(f"{source} holds {literal!r}, which the bpe level's tokenizer "
                             "uses for itself: remove it from the corpus (or use "
                             "tokenize.level char or word)")


def _byte_bounds(f: BinaryIO, size: int, train: float, val: float, reverse: bool,
                 separator: bytes | None, chunk_size: int | None, source: str
                 ) -> dict[str, tuple[int, int]]:
    """Each split's byte range in the file: the char level's splits of the same text."""
    cut: Cut = separator_cut(separator) if separator else utf8_cut
    pieces: list[tuple[int, int]] = []  # (offset, char tokens)
    tail = b""  # the end of the previous piece: a marker may straddle two
    for offset, piece in read_pieces(f, 0, size, chunk_size, cut, source=source):
        _refuse_own_markers(tail + piece, source)
        tail = piece[-8:]
        pieces.append((offset, int(np.count_nonzero(_char_starts(piece, separator)))))
    n = sum(count for _, count in pieces)
    b1, b2 = split_bounds(n, train, val)
    check_split_sizes({"train": b1, "val": b2 - b1, "test": n - b2})
    # Reversed, the char stream's first b1 tokens are the text's last b1.
    chars = ({"train": (n - b1, n), "val": (n - b2, n - b1), "test": (0, n - b2)} if reverse
             else {"train": (0, b1), "val": (b1, b2), "test": (b2, n)})
    wanted = sorted({p for bounds in chars.values() for p in bounds})
    offsets = {0: 0, n: size}
    first = 0
    for (offset, count), (next_offset, _) in zip(pieces, [*pieces[1:], (size, 0)], strict=True):
        for p in wanted:
            if first <= p < first + count and p not in offsets:
                data = os.pread(f.fileno(), next_offset - offset, offset)
                starts = np.flatnonzero(_char_starts(data, separator))
                offsets[p] = offset + int(starts[p - first])
        first += count
    return {name: (offsets[lo], offsets[hi]) for name, (lo, hi) in chars.items()}


LEARN_PIECE = 8192  # characters per text handed to the trainer


def _texts(f: BinaryIO, start: int, stop: int, separator: bytes | None,
           chunk_size: int | None, source: str) -> Iterator[str]:
    """The text of bytes [start, stop) in pieces cut before a space, without separators.

    The trainer gets texts of about LEARN_PIECE characters: given whole pieces of the reader
    (16 MiB), it held several at once and took 3 times the memory and twice the time. Cutting
    before a space keeps its counts of pre-tokens, and so the merges, the same.
    """
    for _, piece in read_pieces(f, start, stop, chunk_size, _space_cut, source=source):
        for segment in piece.split(separator) if separator else [piece]:
            text = segment.decode("utf-8")
            at = 0
            while at < len(text):
                end = text.rfind(" ", at + 1, at + LEARN_PIECE) if at + LEARN_PIECE < len(text) \
                    else len(text)
                end = end if end > at else min(len(text), at + LEARN_PIECE)
                yield text[at:end]
                at = end


def _write_split(writer: Any, tokenizer: BpeTokenizer, f: BinaryIO, start: int, stop: int,
                 reverse: bool, separator: bytes | None, chunk_size: int | None, source: str
                 ) -> int:
    """Encode bytes [start, stop) piece by piece into `writer` in row groups of ROW_GROUP
    tokens (right to left when `reverse`); returns the tokens written."""
    spans = [(offset, len(piece)) for offset, piece in
             read_pieces(f, start, stop, chunk_size, _space_cut, source=source)]
    pending = np.zeros(0, dtype=tokenizer.index_type)
    written = 0
    for offset, length in reversed(spans) if reverse else spans:
        ids = tokenizer.encode_large(os.pread(f.fileno(), length, offset), separator)
        pending = np.concatenate([pending, ids[::-1] if reverse else ids])
        while len(pending) >= ROW_GROUP:
            writer.write_table(indices_table(pending[:ROW_GROUP]), row_group_size=ROW_GROUP)
            pending, written = pending[ROW_GROUP:], written + ROW_GROUP
    if len(pending):
        writer.write_table(indices_table(np.ascontiguousarray(pending)),
                           row_group_size=ROW_GROUP)
    return written + len(pending)


def _trim_heap() -> None:
    """Hand the memory the library's trainer freed back to the system.

    The trainer allocates small objects by the million and frees them when it returns; glibc
    keeps them in its heap, where the encoding that follows would sit on top of them. Measured at
    100 MB of text: 0.21 GB resident after learning, 0.13 GB after the trim (before pre-tokens
    were cut at line breaks, 1.05 GB and 0.09 GB). Not glibc: nothing.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def tokenize_bpe_file(src: str | os.PathLike[str], directory: str | os.PathLike[str],
                      vocab_size: int, train: float, val: float, reverse: bool = False,
                      separator: str | None = None, chunk_size: int | None = None
                      ) -> dict[str, int]:
    """Split the UTF-8 file `src` as the char level would, learn BPE merges on the training
    split, and write the token files and tokenizer.json to `directory` (all or nothing).
    Memory is bounded by the piece size and the library's counts of the training words.
    Returns the tokens in each split."""
    src = Path(src)
    sep = separator.encode("utf-8") if separator else None
    with contextlib.ExitStack() as stack:
        out_dir = stack.enter_context(atomic_dir(directory))
        f = stack.enter_context(open(src, "rb"))
        bounds = _byte_bounds(f, src.stat().st_size, train, val, reverse, sep, chunk_size,
                              str(src))
        start, stop = bounds["train"]
        learned = learn(_texts(f, start, stop, sep, chunk_size, str(src)), vocab_size, separator)
        _trim_heap()
        tokenizer = BpeTokenizer(learned.to_str())
        (out_dir / TOKENIZER_FILE).write_text(tokenizer.learned, encoding="utf-8")
        write_dictionary(out_dir, tokenizer.dictionary)
        sizes = {}
        for name in SPLITS:
            with split_writer(out_dir, name, tokenizer.index_type) as writer:
                sizes[name] = _write_split(writer, tokenizer, f, *bounds[name], reverse, sep,
                                           chunk_size, str(src))
        check_split_sizes(sizes)
    return sizes
