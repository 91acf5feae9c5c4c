"""Drawing text from any model that gives the next token's distribution after a context, and
continuing a prefix as text: cleaned and tokenized as the model's training text was."""

from __future__ import annotations

import collections
import math
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol, cast

import numpy as np

from rnnlm.errors import RnnlmError
from rnnlm.text.bpe import BpeTokenizer
from rnnlm.text.clean import CleanMode, make_cleaner
from rnnlm.text.tokenizers import Level, Tokenizer, tokenizer
from rnnlm.text.vocab import UNK_ID, Vocab


class NextTokenModel(Protocol):
    def next_token_probs(self, context: Sequence[int] | np.ndarray) -> np.ndarray: ...


class Continuation(Protocol):
    """One draw's own reading of its text so far: nothing of it lives on the shared model, so
    concurrent draws from one model never see each other's tokens."""

    def probs(self) -> np.ndarray:
        """The next token's distribution after everything read so far."""
        ...

    def append(self, token: int) -> None: ...


class Reread:
    """The continuation of a model that reads its context afresh on every call; an n-gram model
    (with an `order`) is handed only the n-1 tokens it reads, however long the text."""

    def __init__(self, model: NextTokenModel, prefix: Sequence[int]) -> None:
        order = getattr(model, "order", None)
        window = order - 1 if isinstance(order, int) else None
        self.model, self.history = model, collections.deque(prefix, maxlen=window)

    def probs(self) -> np.ndarray:
        return self.model.next_token_probs(list(self.history))

    def append(self, token: int) -> None:
        self.history.append(token)


def continuation(model: NextTokenModel, prefix: Sequence[int],
                 interrupt: Callable[[], None] | None = None) -> Continuation:
    """A model's own incremental reader when it has one (a network carries its state; it reads
    a long prefix in chunks, calling `interrupt` between them), else one that hands it the
    context each time."""
    start: Callable[..., Continuation] | None = getattr(model, "continuation", None)
    return start(prefix, interrupt) if start is not None else Reread(model, prefix)


def check_temperature(temperature: float, name: str = "temperature") -> None:
    """One rule for every temperature (params.yaml's evaluate.temperature, the served API, the
    CLI): a finite number >= 0. Infinity would be the uniform draw: ask for a large one."""
    if not (math.isfinite(temperature) and temperature >= 0):
        raise RnnlmError(f"{name} must be a finite number >= 0 (0: the most likely token; "
                         f"large: close to a uniform draw), got {temperature}")


def draw(probs: np.ndarray, rng: np.random.Generator, temperature: float = 1.0,
         top_k: int | None = None, banned: Collection[int] = ()) -> int:
    """One token id: the most likely at temperature 0, else sampled from probs^(1/T), optionally
    restricted to the `top_k` most likely tokens; `banned` ids are never drawn. A huge T is the
    uniform draw over the tokens the model gives any probability; a tiny one the greedy pick."""
    check_temperature(temperature)
    if top_k is not None and top_k < 1:
        raise RnnlmError(f"top_k must be at least 1, got {top_k}")
    if banned:
        probs = probs.copy()
        probs[list(banned)] = 0.0
    if not probs.max() > 0:
        raise RnnlmError("the model gives no probability to any token that may be drawn")
    if temperature == 0:
        return int(np.argmax(probs))
    with np.errstate(divide="ignore"):
        logits = np.log(probs)
    best = logits.max()
    # Shifted before dividing, so that neither a tiny nor a huge T overflows.
    with np.errstate(over="ignore"):
        logits = (logits - best) / temperature
    if top_k is not None and top_k < len(logits):
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= cutoff, logits, -np.inf)
    weights = np.exp(logits)
    return int(rng.choice(len(weights), p=weights / weights.sum()))


def derived_seed(seed: int, *keys: str) -> int:
    """A seed of its own for each combination of keys (a model, a prefix), drawn from `seed`:
    different prefixes get different draws, and the same keys the same draw in every process
    (crc32, unlike `hash`, is not salted per process)."""
    entropy = [seed, *(zlib.crc32(key.encode("utf-8")) for key in keys)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def generate(model: NextTokenModel, prefix: Sequence[int], num_tokens: int, seed: int,
             temperature: float = 1.0, top_k: int | None = None, banned: Collection[int] = (),
             interrupt: Callable[[], None] | None = None) -> list[int]:
    """`num_tokens` ids continuing `prefix` (the prefix itself not included); seeded.
    `interrupt` is called before each token: it raises to stop the draw (a request's deadline)."""
    if num_tokens == 0:
        return []
    rng = np.random.default_rng(seed)
    reader = continuation(model, prefix, interrupt)
    new: list[int] = []
    for _ in range(num_tokens):
        if interrupt is not None:
            interrupt()
        token = draw(reader.probs(), rng, temperature, top_k, banned)
        reader.append(token)
        new.append(token)
    return new


def text_tokenizer(text: Mapping[str, object]) -> Tokenizer:
    """The tokenizer a model's text was cut with (model.json's `text`)."""
    if text["level"] == "bpe":
        return BpeTokenizer(str(text["bpe"]))
    return tokenizer(cast(Level, text["level"]))


def prefix_ids(prefix: str, vocab: Vocab, clean: CleanMode, tokens: Tokenizer) -> list[int]:
    """The prefix cleaned and tokenized as the training text was."""
    if not prefix:
        return []
    cleaned = make_cleaner(clean).clean(prefix)
    if not cleaned.strip():
        raise RnnlmError(f"the prefix {prefix!r} has no tokens left after cleaning (mode "
                         f"{clean!r}); give a prefix in the corpus's alphabet, or ''")
    return vocab.encode(tokens.tokenize(cleaned)).tolist()


def continue_text(model: NextTokenModel, vocab: Vocab, text: Mapping[str, object], prefix: str,
                  num_tokens: int, seed: int, temperature: float = 1.0,
                  top_k: int | None = None, interrupt: Callable[[], None] | None = None) -> str:
    """The prefix followed by `num_tokens` generated tokens, as text; an empty prefix samples
    from the start. `<unk>` is never drawn unless the prefix holds one: it is not a word of the
    text but "some token the vocabulary dropped"."""
    if num_tokens < 0:
        raise RnnlmError(f"the number of tokens to generate must be >= 0, got {num_tokens}")
    # model.json's values; an unknown one is refused by the cleaners' and tokenizers' tables.
    tokens = text_tokenizer(text)
    ids = prefix_ids(prefix, vocab, cast(CleanMode, text["clean"]), tokens)
    reverse = bool(text.get("reverse", False))
    if reverse:  # the model reads right to left: it generates what comes before the prefix
        ids = ids[::-1]
    banned = () if UNK_ID in ids else (UNK_ID,)
    new = vocab.decode(generate(model, ids, num_tokens, seed, temperature, top_k, banned,
                                interrupt))
    out = [*vocab.decode(ids), *new]
    return tokens.join(out[::-1] if reverse else out)
