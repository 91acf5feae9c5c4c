import numpy as np
import pyarrow as pa

from rnnlm.text.stats import corpus_report
from rnnlm.text.token_files import TokenCounts
from rnnlm.text.tokenizers import tokenize
from rnnlm.text.vocab import UNK, Vocab


def counts_of(text: str) -> TokenCounts:
    stream = tokenize(text, "word")
    counts = np.bincount(stream.indices.to_numpy(), minlength=len(stream.dictionary))
    return TokenCounts(stream.dictionary, counts)


def test_top_tokens_are_by_count_then_token_and_skip_unk() -> None:
    train = counts_of("b a c a b d e e e")
    vocab = Vocab.from_counts(train.dictionary, train.counts, reserved=["<bos>"])
    report = corpus_report({"train": train}, vocab, top=3)
    # a and b tie at 2: the token breaks the tie, and c, d (1 each) are cut off.
    assert report["top_tokens"] == [{"token": "e", "count": 3}, {"token": "a", "count": 2},
                                    {"token": "b", "count": 2}]
    assert report["splits"]["train"] == {"tokens": 9, "types": 5, "oov_rate": 0.0}


def test_fewer_entries_than_top_and_a_vocabulary_of_unk_alone() -> None:
    train = counts_of("x y y")
    few = corpus_report({"train": train}, Vocab.from_counts(train.dictionary, train.counts))
    assert few["top_tokens"] == [{"token": "y", "count": 2}, {"token": "x", "count": 1}]
    alone = Vocab.from_counts(train.dictionary, train.counts, min_freq=100)
    assert alone.tokens == (UNK,)
    report = corpus_report({"train": train}, alone)
    assert report["top_tokens"] == [] and report["splits"]["train"]["oov_rate"] == 1.0
    assert report["vocab_size"] == 1


def test_reserved_entries_count_as_tokens() -> None:
    train = TokenCounts(pa.array(["<eod>", "a"]), np.array([5, 1]))
    vocab = Vocab.from_counts(train.dictionary, train.counts, reserved=["<eod>"])
    assert corpus_report({"train": train}, vocab, top=1)["top_tokens"] == [
        {"token": "<eod>", "count": 5}]


def test_splits_sharing_a_dictionary_get_their_own_oov_rates() -> None:
    stream = tokenize("a a a b b c d a b e", "word")
    indices, dictionary = stream.indices.to_numpy(), stream.dictionary
    counts = {name: TokenCounts(dictionary, np.bincount(part, minlength=len(dictionary)))
              for name, part in (("train", indices[:6]), ("val", indices[6:]))}
    vocab = Vocab.from_counts(dictionary, counts["train"].counts, min_freq=2)  # a, b
    splits = corpus_report(counts, vocab)["splits"]
    assert splits["train"]["oov_rate"] == 1 / 6  # c
    assert splits["val"]["oov_rate"] == 2 / 4  # d, e
