import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnlm.errors import RnnlmError
from rnnlm.text.splits import reverse_stream, split_bounds, split_stream
from rnnlm.text.token_files import read_indices, read_tokens, tokenize_file, write_token_files
from rnnlm.text.tokenizers import TOKENIZERS, WordTokenizer, tokenize, tokenizer


@given(st.text(min_size=1))
def test_char_tokens_are_the_characters(s: str) -> None:
    assert tokenize(s, "char").to_pylist() == list(s)


@given(st.text(alphabet=st.sampled_from("ab é中\n\t "), min_size=0))
def test_word_tokens_match_str_split(s: str) -> None:
    assert tokenize(s, "word").to_pylist() == s.split()


def test_split_boundaries_follow_int_of_fractions() -> None:
    assert split_bounds(173428, 0.9, 0.05) == (int(0.9 * 173428), int(0.95 * 173428))
    stream = tokenize("abcdefghijklmnopqrst" * 5, "char")
    parts = split_stream(stream, 0.9, 0.05)
    assert [len(p) for p in parts.values()] == [90, 5, 5]
    joined = [t for p in parts.values() for t in p.to_pylist()]
    assert joined == stream.to_pylist()


def test_split_boundaries_are_not_shifted_by_float_noise() -> None:
    # 0.7 + 0.2 == 0.8999999999999999 in floating point; the boundary must still be 27 of 30.
    assert split_bounds(30, 0.7, 0.2) == (21, 27)


def test_a_split_too_short_is_an_error() -> None:
    with pytest.raises(RnnlmError, match="the val split has 0 tokens of 10"):
        split_stream(tokenize("abcdefghij", "char"), 0.9, 0.05)


def test_reverse_reverses_the_stream() -> None:
    assert reverse_stream(tokenize("one two three", "word")).to_pylist() == [
        "three", "two", "one"]


@pytest.mark.parametrize(("level", "index_type"), [("char", "int8"), ("word", "int32")])
def test_token_files_round_trip_and_pandas_joins_them(tmp_path, level, index_type) -> None:
    text = "the cat sat on the mat and the dog sat on the log " * 3
    stream = tokenize(text, level)  # type: ignore[arg-type]
    splits = split_stream(stream, 0.6, 0.2)
    write_token_files(tmp_path / "tokens", splits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens"]  # no temporary left
    for name, part in splits.items():
        assert read_tokens(tmp_path / "tokens", name).to_pylist() == part.to_pylist()
        assert read_tokens(tmp_path / "tokens", name, 3).to_pylist() == part[:3].to_pylist()
    indices = pd.read_parquet(tmp_path / "tokens" / "train.parquet")
    assert str(indices["index"].dtype) == index_type
    dictionary = pd.read_parquet(tmp_path / "tokens" / "dictionary.parquet")
    joined = indices.merge(dictionary, on="index", how="left")
    assert joined["token"].tolist() == splits["train"].to_pylist()


def test_token_files_need_one_dictionary(tmp_path) -> None:
    splits = {"train": tokenize("ab", "char"), "val": tokenize("é", "char")}
    with pytest.raises(RnnlmError, match="share one dictionary"):
        write_token_files(tmp_path / "tokens", splits)
    assert not (tmp_path / "tokens").exists()


def test_token_files_errors_name_the_file_and_the_fix(tmp_path) -> None:
    with pytest.raises(RnnlmError, match=r"train\.parquet is missing: run the tokenize"):
        read_tokens(tmp_path, "train")
    write_token_files(tmp_path, split_stream(tokenize("abcdefghij" * 10, "char"), 0.6, 0.2))
    (tmp_path / "dictionary.parquet").unlink()
    with pytest.raises(RnnlmError, match=r"dictionary\.parquet is missing: run the tokenize"):
        read_tokens(tmp_path, "train")
    pd.DataFrame({"index": [0, 2], "token": ["a", "b"]}).to_parquet(
        tmp_path / "dictionary.parquet")
    with pytest.raises(RnnlmError, match="not 0, 1, 2"):
        read_tokens(tmp_path, "train")


def test_no_tokens_read_keeps_the_index_type(tmp_path) -> None:
    write_token_files(tmp_path, split_stream(tokenize("abcdefghij" * 10, "char"), 0.6, 0.2))
    assert read_indices(tmp_path, "train", 0).dtype == np.int8
    assert read_indices(tmp_path, "train").dtype == np.int8


@given(st.lists(st.text(alphabet="abcé中-", min_size=1), max_size=20))
def test_join_gives_back_the_tokens(words: list[str]) -> None:
    for level in TOKENIZERS:
        tokens = words if level == "word" else list("".join(words))
        tokenizer_ = tokenizer(level)
        assert tokenizer_.tokenize(tokenizer_.join(tokens)).to_pylist() == tokens


def test_an_unknown_level_is_refused_once_by_the_table() -> None:
    with pytest.raises(RnnlmError, match=r"unknown tokenize.level 'bytes'; use one of 'char'"):
        tokenizer("bytes")  # type: ignore[arg-type]
    with pytest.raises(RnnlmError, match=r"bpe level's tokenizer is learned"):
        tokenizer("bpe")


class CommaWords(WordTokenizer):
    """A third tokenizer for the seam's test: words, with commas as tokens of their own."""

    level = "comma"  # type: ignore[assignment]

    def tokenize(self, text: str) -> pa.DictionaryArray:
        return super().tokenize(text.replace(",", " , "))


def test_a_new_tokenizer_is_one_class_and_one_table_entry(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(TOKENIZERS, "comma", CommaWords())
    assert tokenize("a,b c", "comma").to_pylist() == ["a", ",", "b", "c"]  # type: ignore[arg-type]
    # tokenize_file finds it in the table too; its streaming form is the word tokenizer's (the
    # same tokens on a text without commas: a real one would stream its own way).
    (tmp_path / "clean.txt").write_text("a b a c " * 20)
    level = "comma"
    sizes = tokenize_file(tmp_path / "clean.txt", tmp_path / "tokens", level, 0.8, 0.1)  # type: ignore[arg-type]
    assert sum(sizes.values()) == 80
    assert read_tokens(tmp_path / "tokens", "train").to_pylist()[:4] == ["a", "b", "a", "c"]
