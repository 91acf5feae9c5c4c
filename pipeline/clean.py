"""Stage clean: check the raw corpus is UTF-8 and clean it by `clean.mode`, piece by piece.

A corpus of several documents (`data.documents`) is cleaned document by document, with
`data.separator` between them; the download manifest says where each document lies.
"""

import json

from rnnlm.errors import RnnlmError
from rnnlm.layout import CLEAN_TEXT, RAW_MANIFEST, RAW_TEXT
from rnnlm.settings import Params
from rnnlm.text.clean import clean_file, document_spans

from ._stage import run_stage


def clean(params: Params) -> None:
    manifest = json.loads(RAW_MANIFEST.read_text()) if RAW_MANIFEST.exists() else {}
    if "bytes" in manifest and manifest["bytes"] != RAW_TEXT.stat().st_size:
        raise RnnlmError(f"{RAW_TEXT} has {RAW_TEXT.stat().st_size} bytes but {RAW_MANIFEST} "
                         f"says {manifest['bytes']}: run the download stage again")
    spans = document_spans(manifest)
    expected = len(params.data.sources)
    if (len(spans) if spans else 1) != expected:
        raise RnnlmError(f"{RAW_MANIFEST} lists {len(spans) if spans else 1} document(s) but "
                         f"params.yaml `data` has {expected}: run the download stage again")
    clean_file(RAW_TEXT, CLEAN_TEXT, params.clean.mode, params.clean.strip_gutenberg,
               documents=spans, separator=params.data.document_separator)


if __name__ == "__main__":
    run_stage("clean", clean)
