"""Stage clean: decode the raw corpus as UTF-8 and clean it by `clean.mode`."""

from rnnlm.io import write_text
from rnnlm.text import clean_text, decode_utf8

from ._stage import run_stage
from .paths import CLEAN_TEXT, RAW_TEXT
from .settings import Params


def clean(params: Params) -> None:
    text = decode_utf8(RAW_TEXT.read_bytes(), source=str(RAW_TEXT))
    write_text(CLEAN_TEXT, clean_text(text, params.clean.mode, params.clean.strip_gutenberg))


if __name__ == "__main__":
    run_stage("clean", clean)
