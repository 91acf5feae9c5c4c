import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnlm.errors import RnnlmError
from rnnlm.text import clean as text
from rnnlm.text.clean import clean_text, decode_utf8, strip_gutenberg


def book_clean(s: str) -> str:
    return re.sub("[^A-Za-z]+", " ", s).lower()


@given(st.text(alphabet=st.sampled_from("aZq \n\t.,-'é中😀"), min_size=1))
def test_d2l_clean_equals_the_books_regex(s: str) -> None:
    expected = book_clean(s)
    if not expected.strip():
        with pytest.raises(RnnlmError, match="empty after cleaning"):
            clean_text(s, "d2l")
    else:
        assert clean_text(s, "d2l") == expected


def test_d2l_clean_collapses_runs_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "_CHUNK", 3)
    s = "Ab.. ..cD\n\nE--f  g. "
    assert clean_text(s, "d2l") == book_clean(s)


def test_normalize_keeps_case_and_punctuation_and_collapses_space() -> None:
    assert clean_text("  \uff28ello,\n\tWorld!  \ufb01 ", "normalize") == "Hello, World! fi"


def test_none_keeps_text_as_is() -> None:
    assert clean_text("First Citizen:\nBefore", "none") == "First Citizen:\nBefore"


def test_invalid_utf8_names_the_offset() -> None:
    with pytest.raises(RnnlmError, match=r"not valid UTF-8 \(byte 3"):
        decode_utf8(b"abc\xff\xfe", "data/raw/corpus.txt")


def test_empty_after_cleaning_is_an_error() -> None:
    with pytest.raises(RnnlmError, match="empty after cleaning"):
        clean_text("1234 ... 5678", "d2l")


def test_strip_gutenberg_keeps_the_body_only() -> None:
    book = (
        "Header\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\nThe body.\n"
        "*** END OF THE PROJECT GUTENBERG EBOOK X ***\nLicence"
    )
    assert strip_gutenberg(book).strip() == "The body."
    assert clean_text(book, "d2l", gutenberg=True) == " the body "
    with pytest.warns(UserWarning, match="no Project Gutenberg"):
        assert strip_gutenberg("no markers") == "no markers"
    assert strip_gutenberg("*** start of the project gutenberg ebook ***\nBody").strip() == "Body"
