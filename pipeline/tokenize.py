"""Stage tokenize: cleaned text -> token stream -> contiguous train/val/test token files.

With several documents, the separator between them is one token (never split into characters).
At bpe level the merges are learned on the training split and saved beside the token files.
"""

from rnnlm.layout import CLEAN_TEXT, TOKENS_DIR
from rnnlm.settings import Params
from rnnlm.text.bpe import tokenize_bpe_file
from rnnlm.text.token_files import tokenize_file

from ._stage import run_stage


def tokenize_stage(params: Params) -> None:
    t = params.tokenize
    if t.level == "bpe":  # learns its merges on the training split, saved as tokenizer.json
        tokenize_bpe_file(CLEAN_TEXT, TOKENS_DIR, t.vocab_size, params.split.train,
                          params.split.val, reverse=t.reverse,
                          separator=params.data.document_separator)
        return
    tokenize_file(CLEAN_TEXT, TOKENS_DIR,
                  params.tokenize.level, params.split.train, params.split.val,
                  reverse=params.tokenize.reverse, separator=params.data.document_separator)


if __name__ == "__main__":
    run_stage("tokenize", tokenize_stage)
