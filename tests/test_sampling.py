"""Drawing tokens: greedy, temperature, top-k, seeds; and prefixes cut like the training text."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlm.errors import RnnlmError
from rnnlm.ngram.model import UniformModel
from rnnlm.sampling import continue_text, draw
from rnnlm.text.vocab import Vocab

PROBS = np.array([0.1, 0.5, 0.15, 0.25])


def test_temperature_zero_is_the_most_likely_token() -> None:
    rng = np.random.default_rng(0)
    assert {draw(PROBS, rng, temperature=0) for _ in range(20)} == {1}


def test_top_k_only_draws_among_the_k_most_likely() -> None:
    rng = np.random.default_rng(0)
    drawn = {draw(PROBS, rng, top_k=2) for _ in range(300)}
    assert drawn == {1, 3}


def test_low_temperature_sharpens_and_sampling_follows_the_distribution() -> None:
    rng = np.random.default_rng(0)
    plain = np.bincount([draw(PROBS, rng) for _ in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(plain, PROBS, atol=0.03)
    cold = np.bincount([draw(PROBS, rng, temperature=0.25) for _ in range(2000)], minlength=4)
    assert cold[1] / 2000 > 0.8


def test_bad_sampling_settings_are_named() -> None:
    rng = np.random.default_rng(0)
    for temperature in (-1, float("inf"), float("nan")):
        with pytest.raises(RnnlmError, match="temperature must be a finite number >= 0"):
            draw(PROBS, rng, temperature=temperature)
    with pytest.raises(RnnlmError, match="top_k must be at least 1"):
        draw(PROBS, rng, top_k=0)


def test_extreme_temperatures_are_the_greedy_and_the_uniform_draw_never_nan() -> None:
    rng = np.random.default_rng(0)
    probs = np.array([0.0, 0.7, 0.2, 0.1, 0.0])  # index 0 as <unk>, 4 never seen
    assert {draw(probs, rng, temperature=1e-300) for _ in range(200)} == {1}
    hot = np.bincount([draw(probs, rng, temperature=1e300) for _ in range(3000)], minlength=5)
    # Uniform over the tokens the model can produce: never one it gives probability 0.
    assert hot[0] == hot[4] == 0
    np.testing.assert_allclose(hot[1:4] / 3000, 1 / 3, atol=0.04)


def test_banned_tokens_are_never_drawn_even_when_most_likely() -> None:
    rng = np.random.default_rng(0)
    probs = np.array([0.9, 0.05, 0.05])
    assert draw(probs, rng, temperature=0, banned=(0,)) in (1, 2)
    assert 0 not in {draw(probs, rng, temperature=5.0, banned=(0,)) for _ in range(300)}
    for temperature in (0.0, 1.0):
        with pytest.raises(RnnlmError, match="no probability to any token that may be drawn"):
            draw(np.array([1.0, 0.0]), rng, temperature=temperature, banned=(0,))


def test_prefixes_are_cleaned_like_the_corpus_and_empty_ones_allowed() -> None:
    vocab = Vocab(("<unk>", " ", "a", "b"), (0, 5, 5, 5))
    text = {"clean": "d2l", "level": "char"}
    model = UniformModel(len(vocab))
    out = continue_text(model, vocab, text, "A,b!", 5, seed=1)
    assert out.startswith("a b ") and out != "a b "
    assert out == continue_text(model, vocab, text, "A,b!", 5, seed=1)
    assert continue_text(model, vocab, text, "", 7, seed=1)
    with pytest.raises(RnnlmError, match="the prefix '123' has no tokens left after cleaning"):
        continue_text(model, vocab, text, "123", 5, seed=1)
    with pytest.raises(RnnlmError, match="must be >= 0"):
        continue_text(model, vocab, text, "ab", -3, seed=1)
