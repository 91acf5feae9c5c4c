"""Stage vocab: the vocabulary from the training split, corpus statistics, Zipf figure."""

from rnnlm.io import write_json
from rnnlm.stats import corpus_report, zipf_figure
from rnnlm.tokens import SPLITS, read_tokens
from rnnlm.vocab import Vocab

from ._stage import run_stage
from .paths import FIGURES, REPORTS, VOCAB, tokens_path
from .settings import Params


def vocab_stage(params: Params) -> None:
    streams = {name: read_tokens(tokens_path(name)) for name in SPLITS}
    vocab = Vocab.build(streams["train"], params.vocab.min_freq, params.vocab.reserved)
    ids = {name: vocab.encode(stream) for name, stream in streams.items()}
    vocab.save(VOCAB)
    write_json(REPORTS / "corpus.json", corpus_report(streams, ids, vocab))
    # Raw tokens, not ids: <unk> would merge the rare tail that Zipf's law is about.
    zipf_figure(FIGURES / "zipf.png", streams["train"].indices.to_numpy(zero_copy_only=False))


if __name__ == "__main__":
    run_stage("vocab", vocab_stage)
