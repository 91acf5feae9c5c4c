"""Stage tokenize: cleaned text -> token stream -> contiguous train/val/test Parquet files."""

from rnnlm.tokens import reverse_stream, split_stream, tokenize, write_tokens

from ._stage import run_stage
from .paths import CLEAN_TEXT, tokens_path
from .settings import Params


def tokenize_stage(params: Params) -> None:
    stream = tokenize(CLEAN_TEXT.read_text(encoding="utf-8"), params.tokenize.level)
    if params.tokenize.reverse:
        stream = reverse_stream(stream)
    splits = split_stream(stream, params.split.train, params.split.val)
    for name, part in splits.items():
        write_tokens(tokens_path(name), part)


if __name__ == "__main__":
    run_stage("tokenize", tokenize_stage)
