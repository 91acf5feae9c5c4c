"""Stage download: fetch the corpus (cache first, then mirrors in order), verify its checksum."""

from rnnlm.download import fetch
from rnnlm.io import write_json

from ._stage import run_stage
from .paths import RAW_MANIFEST, RAW_TEXT
from .settings import Params


def download(params: Params) -> None:
    data = params.data
    manifest = fetch(data.urls, RAW_TEXT, algorithm=data.algorithm, checksum=data.checksum)
    write_json(RAW_MANIFEST, manifest.to_dict())


if __name__ == "__main__":
    run_stage("download", download)
