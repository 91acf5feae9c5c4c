"""The streaming data stages give what the whole-text functions give, whatever the piece size.

Tiny pieces (1 to 7 bytes) put boundaries inside words, inside multi-byte characters, inside runs
of punctuation and inside separators; tiny row groups put them inside every split.
"""

import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers.tokens import expected_splits, tokenized_streamed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlm.errors import RnnlmError
from rnnlm.text import pieces as chunks
from rnnlm.text import token_files
from rnnlm.text.clean import clean_file, clean_text, decode_utf8
from rnnlm.text.ids import encode_splits
from rnnlm.text.pieces import read_pieces, utf8_cut
from rnnlm.text.splits import SPLITS, split_stream
from rnnlm.text.token_files import count_tokens, read_tokens, tokenize_file, write_token_files
from rnnlm.text.tokenizers import tokenize
from rnnlm.text.vocab import Vocab

SIZES = (1, 2, 3, 7)
GUTENBERG = ["*** START OF THE PROJECT GUTENBERG EBOOK X ***\n",
             "\n*** END OF THIS PROJECT GUTENBERG EBOOK ***\n"]
TEXT = st.lists(st.sampled_from(
    ["a", "Z", "q", " ", "\n", "\t", ".", ",", "--", "é", "中", "😀", "\u00a0", "\ufb01",
     "\u0301", "\x1c", "*", *GUTENBERG]), max_size=40).map("".join)
FILES = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


def cleaned_whole(text: str, mode: str, gutenberg: bool) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return clean_text(text, mode, gutenberg)  # type: ignore[arg-type]
        except RnnlmError:
            return None


def cleaned_streamed(tmp: Path, text: str, mode: str, gutenberg: bool, size: int) -> str | None:
    (tmp / "raw.txt").write_bytes(text.encode("utf-8"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clean_file(tmp / "raw.txt", tmp / "clean.txt", mode, gutenberg,  # type: ignore[arg-type]
                       chunk_size=size)
        except RnnlmError:
            return None
    return (tmp / "clean.txt").read_text(encoding="utf-8")


@FILES
@given(text=TEXT, mode=st.sampled_from(["d2l", "none", "normalize"]), gutenberg=st.booleans())
def test_clean_in_tiny_pieces_equals_cleaning_the_whole_text(tmp_path, text, mode,
                                                             gutenberg) -> None:
    expected = cleaned_whole(text, mode, gutenberg)
    for size in SIZES:
        assert cleaned_streamed(tmp_path, text, mode, gutenberg, size) == expected


def test_a_run_of_non_letters_across_pieces_is_one_space(tmp_path) -> None:
    text = "Ab.." + "é中--\n\n" * 5 + "cD"
    for size in SIZES:
        assert cleaned_streamed(tmp_path, text, "d2l", False, size) == "ab cd"


def test_pieces_end_on_character_boundaries(tmp_path) -> None:
    data = "aé中😀b".encode()
    (tmp_path / "f").write_bytes(data)
    with open(tmp_path / "f", "rb") as f:
        pieces = [piece for _, piece in read_pieces(f, 0, len(data), chunk_size=1)]
    assert [p.decode() for p in pieces] == ["a", "é", "中", "😀", "b"]
    assert utf8_cut("a中".encode()[:-1]) == 1


@pytest.mark.parametrize("data", [b"abc\xff\xfe", b"ab\xe4\xb8x", "ab中".encode()[:-1],
                                  b"ok " * 5 + b"\x80"])
def test_invalid_utf8_is_reported_at_the_same_byte_as_a_whole_decode(tmp_path, data) -> None:
    with pytest.raises(RnnlmError) as whole:
        decode_utf8(data, "corpus")
    (tmp_path / "corpus").write_bytes(data)
    for size in SIZES:
        with pytest.raises(RnnlmError) as streamed:
            clean_file(tmp_path / "corpus", tmp_path / "out", "none", chunk_size=size)
        assert str(streamed.value).replace(str(tmp_path / "corpus"), "corpus") == str(whole.value)
    assert not (tmp_path / "out").exists()


@FILES
@given(text=TEXT, level=st.sampled_from(["char", "word"]), reverse=st.booleans())
def test_tokenize_in_tiny_pieces_and_row_groups_equals_the_whole_text(
        tmp_path, monkeypatch, text, level, reverse) -> None:
    monkeypatch.setattr(token_files, "ROW_GROUP", 3)
    splits = expected_splits(text, level, reverse)
    expected = splits if min(len(v) for v in splits.values()) >= 2 else None
    for size in SIZES:
        assert tokenized_streamed(tmp_path, text, level, reverse, size) == expected


@pytest.mark.parametrize("level", ["char", "word"])
@pytest.mark.parametrize("text", ["The time--traveller é 中 😀 " * 30, "plain ascii text " * 40])
def test_the_files_are_those_of_the_whole_text_byte_for_byte(tmp_path, monkeypatch, level,
                                                              text) -> None:
    """Same dictionary, index type and row groups as `write_token_files` of the whole text."""
    monkeypatch.setattr(token_files, "ROW_GROUP", 7)
    tokenized_streamed(tmp_path, text, level, False, 5)
    write_token_files(tmp_path / "whole", split_stream(tokenize(text, level), 0.6, 0.2))
    for name in [*SPLITS, "dictionary"]:
        streamed = tmp_path / "tokens" / f"{name}.parquet"
        assert streamed.read_bytes() == (tmp_path / "whole" / f"{name}.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "tokens" / "train.parquet").num_row_groups > 1
    assert sorted(p.name for p in (tmp_path / "tokens").iterdir()) == [
        "dictionary.parquet", "test.parquet", "train.parquet", "val.parquet"]


def test_counts_vocabulary_and_ids_equal_the_whole_stream(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(token_files, "ROW_GROUP", 16)
    text = "the cat sat on the mat and the dog sat on the log " * 20 + "é 中"
    tokenized_streamed(tmp_path, text, "word", False, 11)
    stream = split_stream(tokenize(text, "word"), 0.6, 0.2)
    counts = count_tokens(tmp_path / "tokens")["train"]
    built = Vocab.from_counts(counts.dictionary, counts.counts, 2, ["<bos>", "sat"])
    reference = Vocab.build(stream["train"], 2, ["<bos>", "sat"])
    assert (built.tokens, built.counts) == (reference.tokens, reference.counts)
    sizes = encode_splits(built, tmp_path / "tokens",
                          {name: tmp_path / f"{name}.npy" for name in SPLITS})
    assert sizes == {name: len(stream[name]) for name in SPLITS}
    for name in SPLITS:
        ids = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
        assert ids.dtype == np.int32
        assert ids.tolist() == reference.encode(stream[name]).tolist()
    head = read_tokens(tmp_path / "tokens", "train", 50)
    assert head.to_pylist() == stream["train"][:50].to_pylist()


def test_a_failed_tokenize_leaves_the_previous_files_and_no_temporaries(tmp_path) -> None:
    tokenized_streamed(tmp_path, "the cat sat on the mat " * 10, "word", False, 7)
    before = {p.name: p.read_bytes() for p in (tmp_path / "tokens").iterdir()}
    (tmp_path / "clean.txt").write_text("too short", encoding="utf-8")
    with pytest.raises(RnnlmError, match="split has"):
        tokenize_file(tmp_path / "clean.txt", tmp_path / "tokens", "word", 0.6, 0.2)
    assert {p.name: p.read_bytes() for p in (tmp_path / "tokens").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.txt", "tokens"]


def test_the_default_piece_size_is_looked_up_at_call_time(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 2)
    (tmp_path / "f").write_bytes(b"abcde")
    with open(tmp_path / "f", "rb") as f:
        assert [p for _, p in read_pieces(f, 0, 5)] == [b"ab", b"cd", b"e"]
