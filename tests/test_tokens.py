import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnlm.errors import RnnlmError
from rnnlm.tokens import (
    read_tokens,
    reverse_stream,
    split_bounds,
    split_stream,
    tokenize,
    write_tokens,
)


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


def test_parquet_round_trip_and_pandas_reads_it(tmp_path) -> None:
    stream = tokenize("the cat sat on the mat", "word")[1:]
    path = tmp_path / "tokens.parquet"
    write_tokens(path, stream)
    assert read_tokens(path).to_pylist() == stream.to_pylist()
    assert pd.read_parquet(path)["token"].tolist() == stream.to_pylist()
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.parquet"]  # no temp file left
