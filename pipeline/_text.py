"""How a fitted model's text was cleaned and tokenized, recorded with the model so that the
prefixes it is given (and the text it is asked to score) are cut the same way."""

from rnnlm.errors import RnnlmError
from rnnlm.layout import TOKENS_DIR
from rnnlm.settings import Params
from rnnlm.text.bpe import TOKENIZER_FILE, BpeTokenizer


def text_settings(params: Params) -> dict[str, object]:
    """How the training text was cleaned and tokenized, as a fitted model records it (the
    prefixes it is given are cut the same way)."""
    text: dict[str, object] = {"clean": params.clean.mode, "level": params.tokenize.level,
                               "reverse": params.tokenize.reverse}
    if params.tokenize.level == "bpe":  # the learned merges travel with the model
        path = TOKENS_DIR / TOKENIZER_FILE
        if not path.is_file():
            raise RnnlmError(f"{path} is missing: run the tokenize stage at bpe level "
                             "(dvc repro tokenize)")
        text["bpe"] = BpeTokenizer.load(path).learned
    return text
