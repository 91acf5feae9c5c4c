"""Stage download: fetch the corpus (cache first, then mirrors in order), verify its checksum.

With `data.documents`, every document is fetched and verified on its own, and the raw corpus is
their concatenation; the manifest lists each one with its byte offset.
"""

from rnnlm.io import write_json
from rnnlm.layout import RAW_MANIFEST, RAW_TEXT
from rnnlm.settings import Params
from rnnlm.text.download import Source, fetch, fetch_documents

from ._stage import run_stage


def download(params: Params) -> None:
    data = params.data
    if not data.documents:
        manifest = fetch(data.urls, RAW_TEXT, algorithm=data.algorithm, checksum=data.checksum,
                         max_bytes=data.max_bytes)
        write_json(RAW_MANIFEST, manifest.to_dict())
        return
    sources = [Source(s.urls, s.algorithm, s.checksum) for s in data.sources]
    write_json(RAW_MANIFEST, fetch_documents(sources, RAW_TEXT, max_bytes=data.max_bytes))


if __name__ == "__main__":
    run_stage("download", download)
