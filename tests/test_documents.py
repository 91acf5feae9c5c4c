"""Corpora of several documents: fetched one by one, cleaned one by one, joined by a separator
token that survives cleaning and tokenization as one token and is reserved in the vocabulary."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.project import committed_params
from helpers.tokens import expected_splits, tokenized_streamed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.clean import clean
from pipeline.download import download
from pipeline.partition import partition
from pipeline.tokenize import tokenize_stage
from pipeline.vocab import vocab_stage
from rnnlm import layout
from rnnlm.errors import RnnlmError
from rnnlm.settings import Params, parse_params
from rnnlm.text import token_files
from rnnlm.text.clean import Span, clean_file, clean_text
from rnnlm.text.splits import SPLITS
from rnnlm.text.token_files import read_tokens
from rnnlm.text.tokenizers import tokenize
from rnnlm.text.vocab import UNK, Vocab

DOCS = ["The Time Machine, by H. G. Wells [1898]\n\n" * 40,
        "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 40,
        "Call me Ishmael. Some years ago--never mind how long precisely--\n" * 40]


def with_documents(tmp: Path, texts: list[str], **sections: dict) -> Params:
    """Params whose data are the given texts, written as local files (one per document)."""
    sources = []
    for i, text in enumerate(texts):
        path = tmp / "sources" / f"doc{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        sources.append({"urls": [str(path)], "sha1": hashlib.sha1(path.read_bytes()).hexdigest()})
    data = {**sources[0], "documents": sources[1:], "separator": "<eod>"}
    raw = committed_params(data=data, partition={"batch_size": 2, "num_steps": 5}, **sections)
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    return parse_params(raw)


def run_data_stages(params: Params) -> None:
    for stage in (download, clean, tokenize_stage, vocab_stage, partition):
        stage(params)


@pytest.mark.parametrize("level", ["char", "word"])
def test_documents_are_joined_by_one_separator_token(tmp_path, monkeypatch, level) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    params = with_documents(tmp_path, DOCS, tokenize={"level": level})
    run_data_stages(params)

    raw = layout.RAW_TEXT.read_bytes()
    assert raw == "".join(DOCS).encode()
    manifest = json.loads(layout.RAW_MANIFEST.read_text())
    offsets = [d["offset"] for d in manifest["documents"]]
    assert offsets == [0, len(DOCS[0]), len(DOCS[0]) + len(DOCS[1])]
    assert [d["bytes"] for d in manifest["documents"]] == [len(d) for d in DOCS]

    cleaned = [clean_text(doc, "d2l") for doc in DOCS]
    assert layout.CLEAN_TEXT.read_text() == "<eod>".join(cleaned)

    vocab = Vocab.load(layout.VOCAB)
    assert vocab.tokens[:2] == (UNK, "<eod>")
    ids = np.concatenate([np.load(layout.ids_path(name)) for name in SPLITS])
    expected = [*tokenize(cleaned[0], level).to_pylist(), "<eod>",
                *tokenize(cleaned[1], level).to_pylist(), "<eod>",
                *tokenize(cleaned[2], level).to_pylist()]
    assert vocab.decode(ids) == expected
    assert int(np.sum(ids == 1)) == 2  # the separator, exactly where the documents meet


def test_one_document_is_todays_pipeline_whatever_the_separator(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    params = with_documents(tmp_path, [DOCS[0] + "<eod>" + DOCS[1]],
                            clean={"mode": "none"})
    run_data_stages(params)
    assert "documents" not in json.loads(layout.RAW_MANIFEST.read_text())
    assert "<eod>" not in Vocab.load(layout.VOCAB).tokens  # just characters, as before
    assert read_tokens(layout.TOKENS_DIR, "train").to_pylist()[:3] == ["T", "h", "e"]


def test_a_document_containing_the_separator_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    params = with_documents(tmp_path, [DOCS[0], "see <eod> here " * 20],
                            clean={"mode": "none"})
    download(params)
    with pytest.raises(RnnlmError, match=r"document 2 \(.*doc1.txt\) contains the document "
                                         r"separator '<eod>' after cleaning"):
        clean(params)
    assert not layout.CLEAN_TEXT.exists()


def test_a_document_empty_after_cleaning_is_named(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    params = with_documents(tmp_path, [DOCS[0], "1234 ... 5678\n"])
    download(params)
    with pytest.raises(RnnlmError, match=r"document 2 \(.*doc1.txt\) is empty after cleaning"):
        clean(params)


def test_a_stale_manifest_is_reported(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNLM_CACHE", str(tmp_path / "cache"))
    download(with_documents(tmp_path, DOCS[:1]))
    with pytest.raises(RnnlmError, match=r"lists 1 document.* has 2: run the download stage"):
        clean(with_documents(tmp_path, DOCS[:2]))


def test_a_document_running_into_the_separator_is_refused(tmp_path) -> None:
    (tmp_path / "raw").write_text("a b aa")
    spans = [Span(0, 3, "one"), Span(3, 6, "two")]
    with pytest.raises(RnnlmError, match=r"the end of document 1 \(one\) runs into"):
        clean_file(tmp_path / "raw", tmp_path / "out", "none", documents=spans, separator="bb")


@pytest.mark.parametrize(("change", "message"), [
    ({"separator": "a b"}, r"'data.separator' = 'a b': .*without whitespace"),
    ({"separator": ""}, r"'data.separator' = '': .*non-empty"),
    ({"separator": "<unk>"}, r"unknown token; choose another separator"),
    ({"separator": "##"}, r"'##' ends with its own beginning, so two of them could overlap"),
    ({"separator": "<e<"}, r"ends with its own beginning"),
    ({"documents": [{"urls": ["x.txt"]}]}, r"'data.documents.0' = .*exactly one of sha1 or sha256"),
    ({"documents": [{"url": ["x.txt"], "sha1": "0" * 40}]},
     r"unknown key 'data.documents.0.url'; allowed here: sha1, sha256, urls"),
    ({"documents": [{"urls": [], "sha1": "0" * 40}]}, r"'data.documents.0.urls' = \[\]"),
])
def test_bad_documents_are_named(change, message) -> None:
    raw = committed_params()
    raw["data"] = {**raw["data"], **change}
    with pytest.raises(RnnlmError, match=message):
        parse_params(raw)


def test_the_default_params_have_one_document() -> None:
    params = parse_params(committed_params())
    assert params.data.documents == [] and params.data.document_separator is None
    assert [s.urls for s in params.data.sources] == [params.data.urls]


SEPARATED = st.lists(st.sampled_from(["a", "b", " ", "\n", "é", "中", "<eod>", "<", "e", "o",
                                      "d", ">"]), max_size=40).map("".join)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=SEPARATED, level=st.sampled_from(["char", "word"]), reverse=st.booleans())
def test_separators_across_tiny_pieces_stay_one_token(tmp_path, monkeypatch, text, level,
                                                      reverse) -> None:
    monkeypatch.setattr(token_files, "ROW_GROUP", 3)
    splits = expected_splits(text, level, reverse, "<eod>")
    expected = splits if min(len(v) for v in splits.values()) >= 2 else None
    for size in (1, 2, 3, 7):
        assert tokenized_streamed(tmp_path, text, level, reverse, size, "<eod>") == expected


def test_each_documents_gutenberg_markers_are_stripped(tmp_path) -> None:
    books = [f"Licence {i}\n*** START OF THE PROJECT GUTENBERG EBOOK {i} ***\nBody {i}, here.\n"
             f"*** END OF THE PROJECT GUTENBERG EBOOK {i} ***\nMore licence\n" for i in (1, 2)]
    (tmp_path / "raw").write_text("".join(books))
    spans = [Span(0, len(books[0]), "one"), Span(len(books[0]), len(books[0]) * 2, "two")]
    for size in (3, 1 << 20):
        clean_file(tmp_path / "raw", tmp_path / "out", "d2l", gutenberg=True, documents=spans,
                   separator="<eod>", chunk_size=size)
        assert (tmp_path / "out").read_text() == " body here <eod> body here "


def test_a_raw_corpus_that_does_not_match_its_manifest_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    layout.RAW_TEXT.parent.mkdir(parents=True)
    layout.RAW_TEXT.write_text("some text", encoding="utf-8")
    layout.RAW_MANIFEST.write_text(json.dumps({"source": "x.txt", "bytes": 5}))
    with pytest.raises(RnnlmError, match=r"has 9 bytes but .* says 5: run the download stage"):
        clean(parse_params(committed_params()))
    assert not layout.CLEAN_TEXT.exists()
