import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnlm.errors import RnnlmError
from rnnlm.text.tokenizers import tokenize
from rnnlm.text.vocab import UNK, Vocab, as_stream


def test_order_is_by_count_then_token() -> None:
    vocab = Vocab.build(as_stream("b a c a b d".split()))
    assert vocab.tokens == (UNK, "a", "b", "c", "d")
    assert vocab.counts == (0, 2, 2, 1, 1)


def test_min_freq_and_reserved_tokens() -> None:
    vocab = Vocab.build(as_stream("x x y z z z".split()), min_freq=2, reserved=["<bos>"])
    assert vocab.tokens == (UNK, "<bos>", "z", "x")
    assert vocab.counts == (1, 0, 3, 2)  # y was replaced by <unk>
    assert vocab.encode(["y", "z", "never"]).tolist() == [0, 2, 0]


@given(st.text(alphabet=st.sampled_from("abcdefg "), min_size=1))
def test_round_trip_in_vocabulary(s: str) -> None:
    stream = tokenize(s, "char")
    vocab = Vocab.build(stream)
    ids = vocab.encode(stream)
    assert ids.dtype == np.int8  # the narrowest type for a small vocabulary
    assert "".join(vocab.decode(ids)) == s


def test_tokens_seen_only_outside_train_are_unknown() -> None:
    train, val = tokenize("the cat sat", "word"), tokenize("the dog sat", "word")
    vocab = Vocab.build(train)
    assert "dog" not in vocab.tokens
    assert vocab.decode(vocab.encode(val)) == ["the", UNK, "sat"]


def test_unknown_tokens_become_unk() -> None:
    vocab = Vocab.build(tokenize("abc", "char"))
    assert vocab.decode(vocab.encode(list("abz"))) == ["a", "b", UNK]


def test_build_is_deterministic_whatever_the_dictionary_order() -> None:
    a = Vocab.build(tokenize("dog cat emu cat dog ant", "word"))
    b = Vocab.build(tokenize("ant dog cat emu cat dog", "word"))
    assert a.tokens == b.tokens and a.counts == b.counts


def test_saved_table_opens_in_pandas(tmp_path) -> None:
    vocab = Vocab.build(tokenize("hello world", "char"))
    path = tmp_path / "vocab.parquet"
    vocab.save(path)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["index", "token", "count"]
    assert frame["token"].iloc[0] == UNK
    loaded = Vocab.load(path)
    assert loaded.tokens == vocab.tokens and loaded.counts == vocab.counts


def test_a_vocabulary_must_start_with_unk() -> None:
    with pytest.raises(RnnlmError, match="index 0"):
        Vocab(("a", UNK), (1, 0))


def test_a_vocabulary_lists_each_token_once_with_its_count() -> None:
    with pytest.raises(RnnlmError, match="twice"):
        Vocab((UNK, "a", "b", "a"), (0, 1, 1, 1))
    with pytest.raises(RnnlmError, match="one count per token"):
        Vocab((UNK, "a"), (0,))
