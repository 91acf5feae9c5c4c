"""Stage functions run in a temporary working directory, without DVC."""

from pathlib import Path

import pytest
import yaml

from pipeline import paths
from pipeline.partition import partition
from pipeline.settings import parse_params
from rnnlm.errors import RnnlmError
from rnnlm.tokens import split_stream, tokenize, write_tokens
from rnnlm.vocab import Vocab

ROOT = Path(__file__).resolve().parents[1]


def test_partition_names_the_short_split_and_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    splits = split_stream(tokenize("abcdefghij" * 300, "char"), 0.9, 0.05)  # val: 150 tokens
    for name, part in splits.items():
        write_tokens(paths.tokens_path(name), part)
    Vocab.build(splits["train"]).save(paths.VOCAB)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["partition"].update(batch_size=8, num_steps=20)  # train (2700) fits, val (150) does not
    with pytest.raises(RnnlmError, match=r"the val split of 150 tokens is too short"):
        partition(parse_params(raw))
    assert not paths.IDS_DIR.exists() or not any(paths.IDS_DIR.iterdir())
    assert not (paths.REPORTS / "partition.json").exists()
