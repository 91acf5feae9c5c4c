"""Stage vocab: the vocabulary from the training split, corpus statistics, Zipf figure."""

import pyarrow as pa

from rnnlm.io import write_json
from rnnlm.layout import CORPUS_REPORT, TOKENS_DIR, VOCAB, ZIPF_FIGURE
from rnnlm.ngram.zipf import zipf_figure
from rnnlm.text.stats import corpus_report
from rnnlm.text.token_files import count_tokens, read_indices
from rnnlm.text.tokenizers import tokenizer
from rnnlm.text.vocab import Vocab

from ._stage import run_stage
from .settings import Params

# The Zipf figure counts n-grams up to trigrams in memory: on a large corpus, of a prefix this long.
ZIPF_TOKENS = 2_000_000


def vocab_stage(params: Params) -> None:
    counts = count_tokens(TOKENS_DIR)
    train = counts["train"]
    reserved = params.vocab.reserved
    separator = params.data.document_separator
    if separator is not None and separator not in reserved:
        reserved = [separator, *reserved]  # right after <unk>, whether train has one or not
    vocab = Vocab.from_counts(train.dictionary, train.counts, params.vocab.min_freq, reserved)
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
