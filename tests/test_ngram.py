"""The n-gram models against the formulas: normalisation, dict-based references, a hand-worked
Kneser-Ney example, and the published figures on The Time Machine."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from helpers.project import SHARED_CORPUS

from rnnlm.errors import RnnlmError
from rnnlm.ngram import model as ngram
from rnnlm.ngram.counts import NgramCounts
from rnnlm.scoring import from_probs

ORDERS = [1, 2, 3, 4, 5]


def fit(method: str, train: np.ndarray, order: int, vocab_size: int) -> ngram.NgramModel:
    counts = NgramCounts.fit(train, order, vocab_size)
    return ngram.Smoothing(method, (0.7, 1.3, 0.4, 2.0, 0.1)[:order], k=0.3).fit(counts)


@pytest.mark.parametrize("method", list(ngram.FITTERS))
@pytest.mark.parametrize("order", ORDERS)
def test_every_context_gives_a_distribution_summing_to_one(method: str, order: int) -> None:
    rng = np.random.default_rng(order)
    vocab_size = 12
    train = rng.integers(1, vocab_size - 1, size=400)  # ids 0 and 11 never seen
    model = fit(method, train, order, vocab_size)
    # Seen contexts (cut from the training stream) and arbitrary ones, of every length.
    contexts = [train[i : i + length] for i in range(0, 300, 7) for length in range(order)]
    contexts += [rng.integers(0, vocab_size, size=rng.integers(0, order + 2)) for _ in range(60)]
    for context in contexts:
        probs = model.next_token_probs(context)
        assert probs.shape == (vocab_size,)
        assert (probs > 0).all()
        assert abs(probs.sum() - 1.0) < 1e-9


@pytest.mark.parametrize("method", list(ngram.FITTERS))
@pytest.mark.parametrize("order", [1, 3, 5])
def test_scoring_a_stream_equals_asking_token_by_token(method: str, order: int) -> None:
    rng = np.random.default_rng(10 + order)
    model = fit(method, rng.integers(0, 9, size=300), order, 10)
    for length in [*range(2, order + 2), 80]:  # splits shorter than the order too
        held_out = rng.integers(0, 10, size=length)
        expected = [model.next_token_probs(held_out[:i])[held_out[i]] for i in range(1, length)]
        np.testing.assert_allclose(model.token_probs(held_out), expected, rtol=1e-12)


@pytest.mark.parametrize("method", list(ngram.FITTERS))
@pytest.mark.parametrize("order", [1, 3, 5])
def test_scoring_in_chunks_gives_the_same_bits_as_at_once(method: str, order: int) -> None:
    rng = np.random.default_rng(20 + order)
    model = fit(method, rng.integers(0, 9, size=300), order, 10)
    held_out = rng.integers(0, 10, size=200)
    with np.errstate(divide="ignore"):
        whole = np.log(model.token_probs(held_out))
    for chunk in (1, 2, 7, 199, 500):
        np.testing.assert_array_equal(model.token_log_probs(held_out, chunk=chunk), whole)


def reference_probs(method: str, train: list[int], test: list[int], order: int, vocab_size: int,
                    eps: list[float], k_add: float) -> list[float]:
    """The formulas with Python dicts, as the book writes them (n(h): times h is followed)."""
    grams = [Counter(tuple(train[i : i + k]) for i in range(len(train) - k + 1))
             for k in range(1, order + 1)]
    contexts = [Counter() for _ in range(order)]
    for k, table in enumerate(grams, start=1):
        for gram, count in table.items():
            contexts[k - 1][gram[:-1]] += count

    def unigram(w: int) -> float:
        if method == "additive":
            return (grams[0][(w,)] + eps[0] / vocab_size) / (len(train) + eps[0])
        return (grams[0][(w,)] + k_add) / (len(train) + k_add * vocab_size)

    def prob(history: tuple[int, ...], w: int) -> float:
        k = len(history) + 1
        if k == 1:
            return unigram(w)
        n_hw, n_h = grams[k - 1][(*history, w)], contexts[k - 1][history]
        if method == "additive":
            return (n_hw + eps[k - 1] * unigram(w)) / (n_h + eps[k - 1])
        return (n_hw + k_add) / (n_h + k_add * vocab_size)

    return [prob(tuple(test[max(i - order + 1, 0) : i]), test[i]) for i in range(1, len(test))]


@pytest.mark.parametrize("method", ["additive", "laplace"])
@pytest.mark.parametrize("order", ORDERS)
def test_additive_and_laplace_equal_the_dict_reference(method: str, order: int) -> None:
    rng = np.random.default_rng(100 + order)
    vocab_size = 15
    train = rng.integers(0, 13, size=2000)  # Markov-ish text would do too; uniform is harsher
    test = rng.integers(0, vocab_size, size=500)
    eps = [0.7, 1.3, 0.4, 2.0, 0.1][:order]
    counts = NgramCounts.fit(train, order, vocab_size)
    model = ngram.Smoothing(method, tuple(eps), k=0.3).fit(counts)
    expected = reference_probs(method, train.tolist(), test.tolist(), order, vocab_size, eps, 0.3)
    np.testing.assert_allclose(model.token_probs(test), expected, rtol=1e-12)
    ours, theirs = from_probs(model.token_probs(test)), from_probs(np.array(expected))
    assert abs(ours / theirs - 1) < 1e-9


def test_the_books_default_smoothing_is_eps_one() -> None:
    train = np.array([1, 2, 1, 2, 3])
    model = ngram.additive(NgramCounts.fit(train, 2, 4), [1.0, 1.0])
    # P(x) = (n(x) + 1/4) / (5 + 1); P(2|1) = (n(1,2) + P(2)) / (n(1) + 1) with n(1) = 2.
    p2 = (2 + 0.25) / 6
    assert model.next_token_probs([])[2] == pytest.approx(p2, rel=1e-12)
    assert model.next_token_probs([1])[2] == pytest.approx((2 + p2) / 3, rel=1e-12)


def test_kneser_ney_matches_a_hand_worked_example() -> None:
    # Train a b a b c (ids 1 2 1 2 3), V = 4 with <unk> (0) unseen. Too few counts to estimate
    # discounts, so both orders use the fallback D1, D2, D3+ = 1/2, 1, 3/2.
    # Unigram continuation counts N1+(.w): a 1 (after b), b 1 (after a), c 1 (after b), <unk> 0.
    #   P1(w) = (1 - 1/2)/3 + (3 * 1/2)/3 * 1/4 = 7/24 for a, b, c;  P1(<unk>) = 1/8.
    # Bigram raw counts: ab 2, ba 1, bc 1.
    #   P(b|a) = (2 - 1)/2 + (1 * 1)/2 * 7/24 = 31/48,   P(c|a) = 1/2 * 7/24 = 7/48
    #   P(a|b) = P(c|b) = (1 - 1/2)/2 + (2 * 1/2)/2 * 7/24 = 19/48,   P(<unk>|b) = 1/16
    #   after c (never followed by anything): P1 itself.
    model = ngram.kneser_ney(NgramCounts.fit(np.array([1, 2, 1, 2, 3]), 2, 4))
    assert model.settings["discounts"] == [[0.5, 1.0, 1.5], [0.5, 1.0, 1.5]]
    expected = {
        (): [Fraction(1, 8), Fraction(7, 24), Fraction(7, 24), Fraction(7, 24)],
        (1,): [Fraction(1, 16), Fraction(7, 48), Fraction(31, 48), Fraction(7, 48)],
        (2,): [Fraction(1, 16), Fraction(19, 48), Fraction(7, 48), Fraction(19, 48)],
        (3,): [Fraction(1, 8), Fraction(7, 24), Fraction(7, 24), Fraction(7, 24)],
    }
    for context, probs in expected.items():
        np.testing.assert_allclose(model.next_token_probs(context), [float(p) for p in probs],
                                   rtol=1e-12)
    np.testing.assert_allclose(model.token_probs(np.array([1, 2, 3, 0])),
                               [31 / 48, 19 / 48, 1 / 8], rtol=1e-12)


def kneser_ney_reference(train: list[int], test: list[int], order: int,
                         vocab_size: int) -> list[float]:
    """Interpolated modified Kneser-Ney from its definition, with dicts."""
    raw = [Counter(tuple(train[i : i + k]) for i in range(len(train) - k + 1))
           for k in range(1, order + 1)]
    adjusted = [Counter() for _ in range(order)]
    adjusted[-1] = raw[-1]
    for k in range(1, order):  # continuation counts: distinct tokens seen before the k-gram
        for gram in raw[k]:
            adjusted[k - 1][gram[1:]] += 1

    def discounts(counts: Counter) -> tuple[float, ...]:
        n = [sum(1 for c in counts.values() if c == r) for r in (1, 2, 3, 4)]
        if 0 in n:
            return (0.5, 1.0, 1.5)
        y = n[0] / (n[0] + 2 * n[1])
        d = tuple(r - (r + 1) * y * n[r] / n[r - 1] for r in (1, 2, 3))
        return d if all(0 < d[r - 1] <= r for r in (1, 2, 3)) else (0.5, 1.0, 1.5)

    ds = [discounts(a) for a in adjusted]

    def prob(k: int, history: tuple[int, ...], w: int) -> float:
        if k == 0:
            return 1 / vocab_size
        lower = prob(k - 1, history[1:], w)
        children = {g[-1]: c for g, c in adjusted[k - 1].items() if g[:-1] == history and c > 0}
        total = sum(children.values())
        if total == 0:
            return lower
        d1, d2, d3 = ds[k - 1]
        discount = {0: 0.0, 1: d1, 2: d2}
        gamma = sum(discount.get(c, d3) for c in children.values()) / total
        c_w = children.get(w, 0)
        return max(c_w - discount.get(c_w, d3), 0) / total + gamma * lower

    return [prob(min(i, order - 1) + 1, tuple(test[max(i - order + 1, 0) : i]), test[i])
            for i in range(1, len(test))]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [60, 3000])  # fallback discounts, then estimated ones
def test_kneser_ney_equals_the_dict_reference(order: int, size: int) -> None:
    rng = np.random.default_rng(order * size)
    # A skewed distribution gives count-of-counts n1..n4 that estimate discounts.
    train = rng.choice(9, size=size, p=np.array([20, 12, 8, 5, 3, 2, 1, 1, 1]) / 53)
    test = rng.integers(0, 10, size=300)
    model = ngram.kneser_ney(NgramCounts.fit(train, order, 10))
    expected = kneser_ney_reference(train.tolist(), test.tolist(), order, 10)
    np.testing.assert_allclose(model.token_probs(test), expected, rtol=1e-12)
    if size == 3000 and order > 1:
        assert model.settings["discounts"][-1] != list(ngram.FALLBACK_DISCOUNTS)


def test_modified_discounts_follow_chen_and_goodman() -> None:
    counts = np.array([1] * 10 + [2] * 4 + [3] * 2 + [4] + [9, 0])  # n1..n4 = 10, 4, 2, 1
    y = 10 / (10 + 2 * 4)
    assert ngram.modified_discounts(counts) == pytest.approx(
        (1 - 2 * y * 4 / 10, 2 - 3 * y * 2 / 4, 3 - 4 * y * 1 / 2), rel=1e-12)
    assert ngram.modified_discounts(np.array([1, 1, 2, 3])) == ngram.FALLBACK_DISCOUNTS  # no n4


def test_the_uniform_model_has_the_vocabulary_size_as_perplexity() -> None:
    ids = np.random.default_rng(0).integers(0, 28, size=1000)
    assert from_probs(ngram.UniformModel(28).token_probs(ids)) == pytest.approx(28, rel=1e-12)


def test_a_split_too_short_to_predict_anything_is_an_error() -> None:
    model = fit("kneser_ney", np.array([1, 2, 3]), 2, 4)
    assert model.token_probs(np.array([1])).shape == (0,)
    with pytest.raises(RnnlmError, match="fewer than 2 tokens"):
        from_probs(model.token_probs(np.array([1])))


def test_bad_smoothing_settings_are_named() -> None:
    counts = NgramCounts.fit(np.array([1, 2, 3]), 2, 4)
    with pytest.raises(RnnlmError, match="needs 2 values eps >= 0"):
        ngram.additive(counts, [1.0])
    with pytest.raises(RnnlmError, match="k > 0"):
        ngram.laplace(counts, 0.0)


def time_machine_ids(level: str, min_freq: int) -> dict[str, np.ndarray]:
    from rnnlm.text.clean import clean_text
    from rnnlm.text.splits import split_stream
    from rnnlm.text.tokenizers import tokenize
    from rnnlm.text.vocab import Vocab

    text = clean_text(SHARED_CORPUS.read_text(encoding="utf-8"), "d2l")
    splits = split_stream(tokenize(text, level), 0.9, 0.05)
    vocab = Vocab.build(splits["train"], min_freq=min_freq)
    return {"V": np.array(len(vocab)), **{k: vocab.encode(v) for k, v in splits.items()}}


@pytest.mark.skipif(not SHARED_CORPUS.is_file(), reason="needs ../shared/data/timemachine.txt")
@pytest.mark.parametrize(("level", "min_freq", "kenlm"),
                         [("char", 0, (6.24, 6.52)), ("word", 2, (99.8, 102.9))])
def test_kneser_ney_trigram_lands_within_two_percent_of_kenlm(level, min_freq, kenlm) -> None:
    # KenLM: lmplz -o 3 --discount_fallback on the same continuous streams (issue 3's figures).
    ids = time_machine_ids(level, min_freq)
    model = ngram.kneser_ney(NgramCounts.fit(ids["train"], 3, int(ids["V"])))
    for split, expected in zip(("val", "test"), kenlm, strict=True):
        ppl = from_probs(model.token_probs(ids[split]))
        assert math.isclose(ppl, expected, rel_tol=0.02), (split, ppl, expected)


@pytest.mark.parametrize("method", list(ngram.FITTERS))
def test_a_truncated_model_is_the_same_method_fitted_to_the_lower_order(method: str) -> None:
    train = np.random.default_rng(5).integers(0, 9, size=300)
    full = fit(method, train, 3, 10)
    direct = fit(method, train, 1, 10)
    held_out = np.random.default_rng(6).integers(0, 10, size=50)
    np.testing.assert_array_equal(full.truncated(1).token_probs(held_out),
                                  direct.token_probs(held_out))
