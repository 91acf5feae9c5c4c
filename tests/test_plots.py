"""`rnnlm plots` draws `dvc plots show` and `dvc plots diff` into a page that needs no network."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rnnlm.cli import plots

DVC_YAML = """plots:
  - curve.csv:
      x: epoch
      y: val_ppl
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A DVC project with one plot, committed at two revisions, val_ppl 9 then 5 at epoch 2."""
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    for tag, last in (("first", 9), ("second", 5)):
        (tmp_path / "curve.csv").write_text(f"epoch,val_ppl\n1,12\n2,{last}\n")
        git(tmp_path, "add", "-A")
        git(tmp_path, "commit", "-qm", tag)
        git(tmp_path, "tag", tag)
    return tmp_path


def test_diff_overlays_the_revisions_in_one_chart_drawn_offline(
        repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(repo)
    plots.main(["--diff", "first", "second", "--out", "diff.html"])
    page = (repo / "diff.html").read_text()
    assert "<svg" in page and "https://" not in page.split("<svg", 1)[0]
    assert page.count("<svg") == 1  # one chart, both revisions in it
    assert "first, second" in page
    svg = page[page.index("<svg"):]
    assert ">first<" in svg and ">second<" in svg  # the legend names each revision
    assert "wrote diff.html (1 plots; no network needed)" in capsys.readouterr().out


def test_an_unknown_revision_is_one_clear_error(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(repo)
    with pytest.raises(SystemExit) as stopped:
        plots.main(["--diff", "no-such-revision"])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "unknown Git revision 'no-such-revision'" in error and "dvc exp list" in error
    assert not (repo / "dvc_plots").exists()
