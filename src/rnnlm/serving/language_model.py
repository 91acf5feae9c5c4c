"""A fitted model (network or n-gram) behind the two requests a service answers: score a text, or
continue a prefix. The text is cleaned and tokenized exactly as the model's training text was,
and scored by the project's protocol (every token after the first predicted once, from the tokens
before it), so a split's text scores here what the evaluate stage measured on that split."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import numpy as np

from rnnlm.errors import RnnlmError
from rnnlm.sampling import (
    NextTokenModel,
    check_temperature,
    continue_text,
    prefix_ids,
    text_tokenizer,
)
from rnnlm.scoring import bits_per_character, from_nll
from rnnlm.text.characters import token_characters
from rnnlm.text.clean import CleanMode, make_cleaner
from rnnlm.text.tokenizers import Level
from rnnlm.text.vocab import UNK_ID, Vocab

LONG_MAX = 2**63 - 1  # the signature's `long`


class TokenScorer(NextTokenModel, Protocol):
    def token_log_probs(self, ids: np.ndarray,
                        interrupt: Callable[[], None] | None = None) -> np.ndarray:
        """log P(ids[i] | ids[:i]) for i = 1..N-1: the scoring protocol."""
        ...


@dataclass(frozen=True)
class TextScore:
    tokens: list[str]  # the scored tokens (all but the first) as the model saw them (<unk>...)
    log_probs: list[float]  # natural log of each one's probability
    perplexity: float
    bits_per_character: float
    characters: int  # of the cleaned text, covered by the scored tokens


class LanguageModel:
    """A model directory as the train stage (models/rnn) or the ngram stage (models/ngram)
    writes it, loaded with its vocabulary and how its text was cut."""

    def __init__(self, kind: str, model: TokenScorer, vocab: Vocab,
                 text: Mapping[str, object]) -> None:
        self.kind, self.model, self.vocab, self.text = kind, model, vocab, dict(text)
        self.tokenizer = text_tokenizer(text)
        self.level = cast(Level, text["level"])
        self.clean = cast(CleanMode, text["clean"])
        self.reverse = bool(text.get("reverse", False))

    @classmethod
    def load(cls, directory: str | Path) -> LanguageModel:
        directory = Path(directory)
        try:
            meta = json.loads((directory / "model.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RnnlmError(f"no model.json in {directory}: not a model the train or ngram "
                             "stage wrote") from None
        if "checkpoint" in meta:  # the train stage's
            from rnnlm.neural.inference import TrainedNetwork, load_trained

            task, vocab, meta = load_trained(directory)
            return cls(str(meta["model"]["kind"]), TrainedNetwork(task), vocab, meta["text"])
        from rnnlm.ngram.store import load_ngram

        ngram, vocab, text = load_ngram(directory)
        return cls("ngram", ngram, vocab, text)

    def score(self, text: str, interrupt: Callable[[], None] | None = None) -> TextScore:
        """The text's tokens' log-probabilities, perplexity and bits per character. `interrupt`
        is called between chunks of the text: it raises to stop the work."""
        stream = self.tokenizer.tokenize(make_cleaner(self.clean).clean(text))
        if len(stream) < 2:
            raise RnnlmError(f"the text to score has {len(stream)} token(s) after cleaning "
                             f"(mode {self.clean!r}, {self.level} level); scoring needs at "
                             "least 2: one to condition on, one to predict")
        indices = stream.indices.to_numpy(zero_copy_only=False)
        ids = self.vocab.encode(stream).astype(np.int32)  # the splits' own id type
        lengths = token_characters(stream.dictionary, self.level, None)[indices]
        if self.reverse:  # the model reads right to left
            ids, lengths = ids[::-1].copy(), lengths[::-1]
        log_probs = self.model.token_log_probs(ids, interrupt)
        if not np.all(np.isfinite(log_probs)):
            raise RnnlmError(f"the {self.kind} model gives probability 0 to a token of this "
                             "text, so its perplexity is infinite")
        characters = int(lengths[1:].sum())
        perplexity = from_nll(float(-log_probs.sum()), len(log_probs))
        return TextScore(tokens=self.vocab.decode(ids[1:]),
                         log_probs=log_probs.tolist(), perplexity=perplexity,
                         bits_per_character=bits_per_character(perplexity, len(log_probs),
                                                               characters),
                         characters=characters)

    def generate(self, prefix: str, tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 0,
                 interrupt: Callable[[], None] | None = None) -> str:
        """The prefix (as cleaned) followed by `tokens` drawn tokens, as text; seeded. A huge
        temperature is the uniform draw over the tokens the model can produce."""
        if not 0 <= tokens <= LONG_MAX:
            raise RnnlmError(f"tokens must be a whole number >= 0, got {tokens}")
        if not 0 <= seed <= LONG_MAX:
            raise RnnlmError(f"seed must be between 0 and 2**63 - 1 (a long), got {seed}")
        check_temperature(temperature)
        if top_k is not None and not 1 <= top_k <= LONG_MAX:
            raise RnnlmError(f"top_k must be between 1 and 2**63 - 1, got {top_k}")
        known = prefix_ids(prefix, self.vocab, self.clean, self.tokenizer)
        if known and all(i == UNK_ID for i in known):
            raise RnnlmError(f"none of the prefix's tokens is in the model's vocabulary of "
                             f"{len(self.vocab)} ({self._alphabet()}); give a prefix in the "
                             "training text's alphabet")
        return continue_text(self.model, self.vocab, self.text, prefix, tokens, seed,
                             temperature, top_k, interrupt)

    def _alphabet(self, shown: int = 40) -> str:
        tokens: Sequence[str] = self.vocab.tokens[1:]
        head = " ".join(repr(t) for t in tokens[:shown])
        return f"e.g. {head}" + (" ..." if len(tokens) > shown else "")
