"""Text from a fitted model, continuing a prefix: `python -m rnnlm.generate --model ngram ...`.

The prefix is cleaned and tokenized exactly as the model's training text was, tokens outside the
vocabulary become `<unk>`, and the draw is seeded, so the same command prints the same text.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

from rnnlm import layout
from rnnlm.errors import RnnlmError, exit_with_message
from rnnlm.sampling import NextTokenModel, generate
from rnnlm.text.bpe import BpeTokenizer
from rnnlm.text.clean import CleanMode, make_cleaner
from rnnlm.text.tokenizers import Level, Tokenizer, tokenizer
from rnnlm.text.vocab import UNK_ID, Vocab


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


def load_model(kind: str, directory: Path | None) -> tuple[NextTokenModel, Vocab, dict]:
    """A fitted model by kind, with its vocabulary and how its text was cut."""
    if kind == "ngram":
        from rnnlm.ngram.store import load_ngram

        return load_ngram(directory or layout.NGRAM_DIR)
    from rnnlm.neural.inference import TrainedNetwork, load_trained

    task, vocab, meta = load_trained(directory or layout.RNN_DIR)
    return TrainedNetwork(task), vocab, meta["text"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["rnn", "ngram"], default="rnn",
                        help="the trained network (models/rnn) or the n-gram (models/ngram)")
    parser.add_argument("--model-dir", type=Path, help="default: models/rnn or models/ngram")
    parser.add_argument("--prefix", default="time traveller",
                        help="text to continue, cleaned and tokenized as the training text was "
                             "(default: %(default)r; '' samples from the start)")
    parser.add_argument("--tokens", type=int, default=200,
                        help="how many tokens to generate after the prefix (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="0 picks the most likely token every time; below 1 sharpens, above "
                             "1 flattens the distribution (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=None,
                        help="draw only among the k most likely tokens (default: all)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the draw: the same seed prints the same text "
                             "(default: %(default)s)")
    args = parser.parse_args(argv)
    with exit_with_message():
        model, vocab, text = load_model(args.model, args.model_dir)
        print(continue_text(model, vocab, text, args.prefix, args.tokens, args.seed,
                            args.temperature, args.top_k))


if __name__ == "__main__":
    main()
