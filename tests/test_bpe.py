"""The bpe level: merges learned on the training split only, the char level's splits, the text
given back by joining the tokens, the same ids whatever the piece size and on every run."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlm.errors import RnnlmError
from rnnlm.text import bpe
from rnnlm.text.bpe import TOKENIZER_FILE, UNK, BpeTokenizer, tokenize_bpe_file
from rnnlm.text.splits import split_bounds
from rnnlm.text.token_files import read_tokens

TEXT = ("the time traveller for so it will be convenient to speak of him was expounding a "
        "recondite matter to us  his grey eyes shone and twinkled\nand his usually pale face "
        "was flushed and animated the fire burned brightly ") * 30


def token_texts(directory: Path, split: str) -> list[str]:
    stream = read_tokens(directory, split)
    return stream.dictionary.take(stream.indices).to_pylist()


def write(tmp_path: Path, text: str, name: str = "tokens", **kwargs) -> Path:
    src = tmp_path / "clean.txt"
    src.write_text(text, encoding="utf-8")
    options = {"vocab_size": 200, "train": 0.8, "val": 0.1, **kwargs}
    tokenize_bpe_file(src, tmp_path / name, **options)
    return tmp_path / name


def test_the_splits_are_the_char_levels_and_their_tokens_join_to_the_text(tmp_path) -> None:
    directory = write(tmp_path, TEXT)
    b1, b2 = split_bounds(len(TEXT), 0.8, 0.1)
    for split, text in {"train": TEXT[:b1], "val": TEXT[b1:b2], "test": TEXT[b2:]}.items():
        tokens = token_texts(directory, split)
        assert "".join(tokens) == text  # spaces, double spaces and line breaks kept
        assert len(tokens) < len(text) / 2  # merged: far fewer tokens than characters
    # A subword, not only characters: the corpus's frequent words are single tokens.
    assert " time" in token_texts(directory, "train")


def test_no_token_spans_a_line_break(tmp_path) -> None:
    # Verse: short lines whose last and first words would merge across the break if allowed.
    text = "speak.\nAll\n\nresolved\n" * 200
    directory = write(tmp_path, text, vocab_size=60)
    tokens = token_texts(directory, "train")
    assert "".join(tokens) == text[: len("".join(tokens))]
    assert {t for t in tokens if "\n" in t} == {"\n", "\n\n"}  # a run of breaks: one token
    assert "speak." in tokens and "All" in tokens


def test_the_same_text_and_params_give_the_same_merges_and_ids(tmp_path) -> None:
    first = write(tmp_path, TEXT, "first")
    again = write(tmp_path, TEXT, "again")
    assert (first / TOKENIZER_FILE).read_bytes() == (again / TOKENIZER_FILE).read_bytes()
    for split in ("train", "val", "test"):
        assert read_tokens(first, split).equals(read_tokens(again, split))


def test_pieces_of_any_size_give_the_same_tokens(tmp_path, monkeypatch) -> None:
    whole = write(tmp_path, TEXT, "whole")
    monkeypatch.setattr(bpe, "LEARN_PIECE", 16)  # the trainer's texts, cut small too
    for chunk_size in (1, 7, 100):
        pieces = write(tmp_path, TEXT, f"pieces{chunk_size}", chunk_size=chunk_size)
        assert (pieces / TOKENIZER_FILE).read_bytes() == (whole / TOKENIZER_FILE).read_bytes()
        for split in ("train", "val", "test"):
            assert read_tokens(pieces, split).equals(read_tokens(whole, split)), split


def test_the_merges_are_learned_on_the_training_split_alone(tmp_path) -> None:
    # A word that only val and test hold, repeated: learned from all the text, it would merge.
    head = TEXT[:4000]
    text = head + " zyzzyva" * 200
    train = len(head) / len(text)
    directory = write(tmp_path, text, train=train, val=(1 - train) / 2)
    vocabulary = BpeTokenizer.load(directory / TOKENIZER_FILE).dictionary.to_pylist()
    assert not [t for t in vocabulary if "zy" in t or "yv" in t]
    # "z", a letter the training split lacks, becomes <unk>, one per character.
    assert "z" not in vocabulary
    b1, b2 = split_bounds(len(text), train, (1 - train) / 2)
    assert token_texts(directory, "val").count(UNK) == text[b1:b2].count("z") > 0


def test_reversed_splits_read_the_char_levels_reversed_splits_backwards(tmp_path) -> None:
    directory = write(tmp_path, TEXT, reverse=True, chunk_size=50)
    n = len(TEXT)
    b1, b2 = split_bounds(n, 0.8, 0.1)
    for split, (lo, hi) in {"train": (n - b1, n), "val": (n - b2, n - b1),
                            "test": (0, n - b2)}.items():
        assert "".join(token_texts(directory, split)[::-1]) == TEXT[lo:hi]


def test_a_document_separator_is_one_token_never_learned_into_merges(tmp_path) -> None:
    text = "<eod>".join([TEXT[:3000], TEXT[3000:6000], TEXT[6000:]])
    directory = write(tmp_path, text, separator="<eod>", chunk_size=64)
    tokens = [t for split in ("train", "val", "test") for t in token_texts(directory, split)]
    assert tokens.count("<eod>") == 2
    assert not [t for t in tokens if "<eod>" in t and t != "<eod>"]


def test_a_prefix_is_encoded_with_the_learned_merges_and_joins_back(tmp_path) -> None:
    learned = BpeTokenizer.load(write(tmp_path, TEXT) / TOKENIZER_FILE)
    tokens = learned.tokenize("the time traveller was flushed").to_pylist()
    assert learned.join(tokens) == "the time traveller was flushed"
    assert len(tokens) < 10


def test_a_corpus_too_short_for_its_splits_is_refused_and_nothing_is_written(tmp_path) -> None:
    with pytest.raises(RnnlmError, match="the val split has 1 tokens"):
        write(tmp_path, "abcdefghijk", train=0.8, val=0.1)
    assert not (tmp_path / "tokens").exists()


def test_a_damaged_tokenizer_file_names_the_fix() -> None:
    with pytest.raises(RnnlmError, match=r"not a saved BPE tokenizer .*dvc repro tokenize"):
        BpeTokenizer("{not json")


@given(st.text(alphabet="ab z\n\té", max_size=60))
@settings(max_examples=200, deadline=None)
def test_encoding_by_distinct_pre_tokens_equals_the_librarys_on_the_whole_text(text) -> None:
    learned = _learned_once()
    assert learned.encode_large(text.encode("utf-8"), None).tolist() == (
        learned.encode([text]).tolist())
    separated = text.replace("z", "<eod>")
    assert learned.encode_large(separated.encode("utf-8"), b"<eod>").tolist() == (
        learned.encode([separated]).tolist())


_LEARNED: list[BpeTokenizer] = []


def _learned_once() -> BpeTokenizer:
    if not _LEARNED:
        from rnnlm.text.bpe import learn

        corpus = ["ab ab  abba\n\tab b a ba é\n", "aab  bba ab\n\n ab"] * 20
        _LEARNED.append(BpeTokenizer(learn(iter(corpus), 40, "<eod>").to_str()))
    return _LEARNED[0]


@pytest.mark.parametrize("literal", ["<unk>", "▁"])
def test_text_holding_the_tokenizers_own_markers_is_refused(tmp_path, literal) -> None:
    # Across a piece boundary too (chunks of 7 bytes).
    with pytest.raises(RnnlmError, match=rf"holds '{literal}', which the bpe level's"):
        write(tmp_path, TEXT[:3001] + literal + TEXT[3001:], chunk_size=7)
    assert not (tmp_path / "tokens").exists()


def test_the_tokenize_stage_at_bpe_level_saves_the_merges_a_fitted_model_records(
        tmp_path, monkeypatch) -> None:
    """The stage (pipeline.tokenize) and what a fitted model records of it (pipeline._text), at
    bpe level; the whole bpe pipeline under DVC is a slow test."""
    from helpers.project import params_with
    from helpers.stages import TEXT

    from pipeline._text import text_settings
    from pipeline.tokenize import tokenize_stage
    from rnnlm import layout

    monkeypatch.chdir(tmp_path)
    params = params_with(tokenize={"level": "bpe", "vocab_size": 40})
    layout.CLEAN_TEXT.parent.mkdir(parents=True)
    layout.CLEAN_TEXT.write_text(TEXT * 30)
    with pytest.raises(RnnlmError, match=r"tokenizer\.json is missing: run the tokenize stage "
                                         r"at bpe level"):
        text_settings(params)
    tokenize_stage(params)
    learned = BpeTokenizer.load(layout.TOKENS_DIR / TOKENIZER_FILE).learned
    assert text_settings(params) == {"clean": params.clean.mode, "level": "bpe",
                                     "reverse": False, "bpe": learned}
    assert all(len(read_tokens(layout.TOKENS_DIR, split)) for split in ("train", "val", "test"))
