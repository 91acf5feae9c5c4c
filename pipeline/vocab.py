"""Stage vocab: the vocabulary from the training split, corpus statistics, Zipf figure.

A vocabulary that cannot model the text is refused before anything is written: one that keeps
fewer than MIN_TOKENS training tokens besides `<unk>` and the reserved tokens (the document
separator included), or that maps more than MAX_UNK_RATE of the training tokens to `<unk>`.
With `<unk>` alone a model predicts it at no cost (perplexity 1.0, 0 bits per character) and, as
champion, generates nothing else; with much of the text `<unk>`, its figures leave out most of
what there was to predict.

MAX_UNK_RATE is a quarter, from the training split's `<unk>` rate at word level (char level: at
most 0.03% whatever the min_freq up to 10):

    min_freq               1      2      3      5      10     100    1000
    Time Machine, d2l      0      7.8%   12.6%  18.9%  27.7%  57.7%  82.1%
    Time Machine, none     0      14.4%  20.9%  27.9%  36.5%  64.6%  86.6%
    Tiny Shakespeare, d2l  0      2.5%   4.3%   6.9%   11.4%  32.9%  65.3%
    Tiny Shakespeare, none 0      7.6%   11.4%  16.2%  23.0%  47.9%  75.7%

(the default split's training fraction, 0.9; d2l and none are clean.mode). Every documented
setting passes with room (char level min_freq 0; word level min_freq 2, at most 14.4%), and so does
min_freq 3 on all four; min_freq 100 and up is refused on all four (a vocabulary of 4 to 256 words),
and a min_freq above every count (only <unk>: 100%) by both checks. Between them it depends on
the corpus: a larger one has fewer rare tokens.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rnnlm.errors import RnnlmError
from rnnlm.io import write_json
from rnnlm.layout import CORPUS_REPORT, TOKENS_DIR, VOCAB, ZIPF_FIGURE
from rnnlm.ngram.zipf import zipf_figure
from rnnlm.settings import Params
from rnnlm.text.stats import corpus_report
from rnnlm.text.token_files import TokenCounts, count_tokens, read_indices
from rnnlm.text.tokenizers import tokenizer
from rnnlm.text.vocab import UNK, Vocab

from ._stage import run_stage

# The Zipf figure counts n-grams up to trigrams in memory: on a large corpus, of a prefix this long.
ZIPF_TOKENS = 2_000_000
# Training tokens a vocabulary must keep besides <unk> and the reserved ones: with one, the next
# token is always that one or <unk>.
MIN_TOKENS = 2
# The largest fraction of training tokens mapped to <unk> that is accepted (module docstring).
MAX_UNK_RATE = 0.25


def largest_passing_min_freq(train: TokenCounts, special: list[str]) -> int | None:
    """The largest vocab.min_freq whose vocabulary passes both checks, or None when none does.

    Raising min_freq drops the rarest tokens first, so the candidates are the training counts
    themselves: sorted, a cumulative sum gives every threshold's <unk> count at once.
    """
    strings = train.dictionary.cast(pa.string())
    is_special = pc.is_in(strings, value_set=pa.array(special, pa.string()))
    ordinary = ~is_special.to_numpy(zero_copy_only=False) & (train.counts > 0)
    counts = np.sort(train.counts[ordinary])
    literal_unk = int(train.counts[pc.equal(strings, UNK).to_numpy(zero_copy_only=False)].sum())
    # Threshold counts[i] drops every token rarer than it: those before its first position.
    first = np.searchsorted(counts, counts, side="left")
    dropped = np.concatenate([[0], np.cumsum(counts)])[first]
    passes = ((literal_unk + dropped <= MAX_UNK_RATE * train.tokens)
              & (len(counts) - first >= MIN_TOKENS))
    return int(counts[passes].max()) if passes.any() else None


def check_vocab(vocab: Vocab, train: TokenCounts, special: list[str], min_freq: int) -> None:
    """Refuse a vocabulary that cannot model the text (module docstring), naming the fix."""
    kept = len(vocab) - len(special)
    unk = int(vocab.count_array[0])  # the training tokens <unk> replaced (Vocab.from_counts)
    rate = unk / max(train.tokens, 1)
    if kept >= MIN_TOKENS and rate <= MAX_UNK_RATE:
        return
    passing = largest_passing_min_freq(train, special)
    if passing is None:
        fix = ("no vocab.min_freq does: the training split has too few distinct tokens or too "
               "many literal <unk>; use a longer corpus or a larger split.train")
    else:
        fix = (f"lower vocab.min_freq: at most {passing:,} passes here (0 keeps every token; 2 "
               "is the usual choice at word level)")
    raise RnnlmError(
        f"vocab.min_freq = {min_freq:,} gives a vocabulary that cannot model the text: "
        f"{len(vocab):,} entr{'y' if len(vocab) == 1 else 'ies'}, of which {kept:,} training "
        f"token{'' if kept == 1 else 's'} besides <unk> and the reserved tokens (at least "
        f"{MIN_TOKENS} needed), and {unk:,} of the {train.tokens:,} training tokens mapped to "
        f"<unk> ({rate:.2%}; at most {MAX_UNK_RATE:.0%} allowed); {fix}. Nothing was written")


def vocab_stage(params: Params) -> None:
    counts = count_tokens(TOKENS_DIR)
    train = counts["train"]
    reserved = params.vocab.reserved
    separator = params.data.document_separator
    if separator is not None and separator not in reserved:
        reserved = [separator, *reserved]  # right after <unk>, whether train has one or not
    vocab = Vocab.from_counts(train.dictionary, train.counts, params.vocab.min_freq, reserved)
    check_vocab(vocab, train, [UNK, *reserved], params.vocab.min_freq)  # before any output
    vocab.save(VOCAB)
    write_json(CORPUS_REPORT, corpus_report(counts, vocab))
    # Raw tokens, not ids: <unk> would merge the rare tail that Zipf's law is about.
    head = read_indices(TOKENS_DIR, "train", ZIPF_TOKENS)
    note = f"\n(first {len(head):,} tokens)" if len(head) < train.tokens else ""
    streams = {{"char": "characters", "word": "words", "bpe": "subwords"}[params.tokenize.level]:
               head}
    if params.tokenize.level != "word":
        # The law is about words: the same text cut into words costs one pass over its prefix
        # (characters and subwords joined are the text).
        text = "".join(train.dictionary.take(pa.array(head)).to_pylist())
        streams["words"] = tokenizer("word").tokenize(text).indices.to_numpy(zero_copy_only=False)
    zipf_figure(ZIPF_FIGURE, streams, note=note)


if __name__ == "__main__":
    run_stage("vocab", vocab_stage)
