"""Text from a fitted model, continuing a prefix: `rnnlm generate --model ngram ...`.

The prefix is cleaned and tokenized exactly as the model's training text was, tokens outside the
vocabulary become `<unk>`, and the draw is seeded, so the same command prints the same text.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnlm import layout
from rnnlm.errors import exit_with_message
from rnnlm.sampling import NextTokenModel, continue_text
from rnnlm.text.vocab import Vocab


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
