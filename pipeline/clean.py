"""Stage clean: check the raw corpus is UTF-8 and clean it by `clean.mode`, piece by piece."""

from rnnlm.cleaning import clean_file

from ._stage import run_stage
from .paths import CLEAN_TEXT, RAW_TEXT
from .settings import Params


def clean(params: Params) -> None:
    clean_file(RAW_TEXT, CLEAN_TEXT, params.clean.mode, params.clean.strip_gutenberg)


if __name__ == "__main__":
    run_stage("clean", clean)
