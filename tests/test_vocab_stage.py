"""The vocab stage refuses a vocabulary that cannot model the text, before writing anything."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from helpers.project import committed_params
from hypothesis import given
from hypothesis import strategies as st

from pipeline._stage import run_stage
from pipeline.vocab import (
    MAX_UNK_RATE,
    MIN_TOKENS,
    check_vocab,
    largest_passing_min_freq,
    vocab_stage,
)
from rnnlm import layout
from rnnlm.errors import RnnlmError
from rnnlm.settings import Params, parse_params
from rnnlm.text.splits import split_stream
from rnnlm.text.token_files import TokenCounts, write_token_files
from rnnlm.text.tokenizers import tokenize
from rnnlm.text.vocab import UNK, Vocab, as_stream

TEXT = ("the time traveller for so it will be convenient to speak of him was expounding a "
        "recondite matter to us his grey eyes shone and twinkled ")
OUTPUTS = (layout.VOCAB, layout.CORPUS_REPORT, layout.ZIPF_FIGURE)
# A second document, so that the stage reserves the separator (never downloaded here).
DOCUMENT = {"urls": ["doc1.txt"], "sha1": "0" * 40}


def raw_params(**sections: dict[str, object]) -> dict:
    return committed_params(**sections)


def params_with(**sections: dict[str, object]) -> Params:
    return parse_params(raw_params(**sections))


def write_words(train: list[str]) -> None:
    """Token files whose training split is exactly `train` (val and test: two words each)."""
    stream = as_stream([*train, "a", "b", "a", "b"])
    n = len(train)
    write_token_files(layout.TOKENS_DIR, {"train": stream[:n], "val": stream[n:n + 2],
                                          "test": stream[n + 2:]})


def with_unk(rare: int, total: int = 400) -> list[str]:
    """`total` training words of which `rare` are seen once (<unk> at min_freq 2)."""
    common = total - rare
    return ["a"] * (common // 2) + ["b"] * (common - common // 2) + [f"r{i}" for i in range(rare)]


def test_a_huge_min_freq_exits_2_with_the_fix_and_leaves_the_outputs(tmp_path, monkeypatch,
                                                                     capsys) -> None:
    monkeypatch.chdir(tmp_path)
    write_token_files(layout.TOKENS_DIR, split_stream(tokenize(TEXT * 30, "char"), 0.9, 0.05))
    Path("params.yaml").write_text(yaml.safe_dump(raw_params()))
    run_stage("vocab", vocab_stage)
    before = [path.read_bytes() for path in OUTPUTS]

    Path("params.yaml").write_text(yaml.safe_dump(raw_params(vocab={"min_freq": 10**9})))
    with pytest.raises(SystemExit) as stopped:
        run_stage("vocab", vocab_stage)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error in stage vocab: vocab.min_freq = 1,000,000,000 gives a "
                          "vocabulary that cannot model the text: 1 entry, of which 0 training "
                          "tokens besides <unk>")
    assert "(100.00%; at most 25% allowed); lower vocab.min_freq: at most " in err
    assert [path.read_bytes() for path in OUTPUTS] == before


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_an_unk_rate_above_the_bound_is_refused(tmp_path, monkeypatch, offset) -> None:
    monkeypatch.chdir(tmp_path)
    at_bound = round(MAX_UNK_RATE * 400)
    assert at_bound == MAX_UNK_RATE * 400  # the boundary case is exact
    write_words(with_unk(at_bound + offset))
    params = params_with(tokenize={"level": "word"}, vocab={"min_freq": 2})
    if offset <= 0:  # at the bound is still accepted
        vocab_stage(params)
        vocab = Vocab.load(layout.VOCAB)
        assert set(vocab.tokens) == {UNK, "a", "b"} and vocab.counts[0] == at_bound + offset
        return
    with pytest.raises(RnnlmError) as refused:
        vocab_stage(params)
    message = str(refused.value)
    assert message.startswith("vocab.min_freq = 2 gives a vocabulary that cannot model the text: "
                              "3 entries, of which 2 training tokens")
    assert (f"and {at_bound + 1} of the 400 training tokens mapped to <unk> (25.25%; at most 25% "
            "allowed); lower vocab.min_freq: at most 1 passes here") in message
    assert not any(path.exists() for path in OUTPUTS)


def test_default_char_settings_on_a_small_text_are_accepted(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_token_files(layout.TOKENS_DIR, split_stream(tokenize(TEXT * 30, "char"), 0.9, 0.05))
    vocab_stage(params_with())
    vocab = Vocab.load(layout.VOCAB)
    assert vocab.counts[0] == 0 and set(vocab.tokens[1:]) == set(TEXT)
    assert all(path.exists() for path in OUTPUTS)


@pytest.mark.parametrize(("train", "sections"), [
    (["a"] * 40, {}),  # one token: nothing to predict
    (["a", "b"] * 20, {"vocab": {"reserved": ["b"]}}),  # a reserved token is no training token
    (["a", "<eod>"] * 20, {"data": {"documents": [DOCUMENT]}}),  # nor is the separator
])
def test_fewer_than_two_training_tokens_are_refused(tmp_path, monkeypatch, train,
                                                    sections) -> None:
    monkeypatch.chdir(tmp_path)
    write_words(train)
    params = params_with(tokenize={"level": "word"}, **sections)
    with pytest.raises(RnnlmError, match=r"of which 1 training token besides <unk> and the "
                       r"reserved tokens \(at least 2 needed\), and 0 of the 40 training tokens"
                       r".* no vocab.min_freq does: the training split has too few distinct"):
        vocab_stage(params)
    assert not any(path.exists() for path in OUTPUTS)


def test_two_training_tokens_besides_the_separator_are_enough(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_words(["a", "b", "<eod>"] * 20)
    vocab_stage(params_with(tokenize={"level": "word"}, data={"documents": [DOCUMENT]}))
    assert Vocab.load(layout.VOCAB).tokens == (UNK, "<eod>", "a", "b")


DICTIONARY = pa.array([UNK, "<eod>", "a", "b", "c", "d", "e"])


@given(st.lists(st.integers(0, 12), min_size=len(DICTIONARY), max_size=len(DICTIONARY))
       .filter(lambda counts: sum(counts) > 0))
def test_the_suggested_min_freq_is_the_largest_that_passes(counts: list[int]) -> None:
    """Against building every vocabulary: a literal <unk> and the separator included."""
    train = TokenCounts(DICTIONARY, np.array(counts, dtype=np.int64))
    special = [UNK, "<eod>"]

    def passes(min_freq: int) -> bool:
        vocab = Vocab.from_counts(DICTIONARY, train.counts, min_freq, special[1:])
        try:
            check_vocab(vocab, train, special, min_freq)
        except RnnlmError:
            return False
        assert len(vocab) - len(special) >= MIN_TOKENS
        assert vocab.counts[0] <= MAX_UNK_RATE * train.tokens
        return True

    passing = [m for m in range(1, max(counts) + 2) if passes(m)]
    assert largest_passing_min_freq(train, special) == (max(passing) if passing else None)
    # Raising min_freq only ever drops tokens: the passing ones are 1, 2, ... up to the largest.
    assert passing == list(range(1, len(passing) + 1))
