"""Named configurations: their values in `dvc exp run -S`'s grammar, the command, the errors."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from helpers.project import committed_params

from rnnlm.cli.experiments import command, load, names, override_value, shell_words
from rnnlm.errors import RnnlmError

ROOT_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_values_keep_their_type_in_the_override_grammar() -> None:
    assert override_value("none") == "'none'"  # a string, not Hydra's null
    assert override_value("1e-3") == "'1e-3'"
    assert override_value(1e-3) == "0.001"
    assert override_value(True) == "true" and override_value(None) == "null"
    assert override_value(["a:b", "it's"]) == "['a:b','it\\'s']"
    with pytest.raises(RnnlmError, match="line break"):
        override_value("a\nb")
    with pytest.raises(RnnlmError, match="a number, a string"):
        override_value({"a": 1})


def test_a_configuration_is_one_dvc_exp_run_and_its_shell_line_says_the_same(tmp_path) -> None:
    (tmp_path / "small.yaml").write_text("# a comment\nmodel.hidden: 16\nclean.mode: none\n"
                                         "evaluate.prefixes: [\"ROMEO:\"]\n")
    cmd = command("small", queue=True, extra=["train.epochs=1"], targets=["train"],
                  directory=tmp_path)
    assert cmd == ["dvc", "exp", "run", "-n", "small", "--queue", "-S", "model.hidden=16",
                   "-S", "clean.mode='none'", "-S", "evaluate.prefixes=['ROMEO:']",
                   "-S", "train.epochs=1", "train"]
    assert shlex.split(shell_words(cmd)) == cmd


def test_an_unknown_or_malformed_configuration_names_the_known_ones(tmp_path) -> None:
    (tmp_path / "listed.yaml").write_text("- a\n- b\n")
    with pytest.raises(RnnlmError, match=r"no configuration 'nope' .*known: listed"):
        load("nope", tmp_path)
    with pytest.raises(RnnlmError, match=r"maps params\.yaml keys"):
        load("listed", tmp_path)


def test_every_shipped_configuration_names_keys_params_yaml_has() -> None:
    params = committed_params()
    assert {"tinyshakespeare-char", "tinyshakespeare-bpe", "tinyshakespeare-word"} <= set(
        names(ROOT_CONFIGS))
    for name in names(ROOT_CONFIGS):
        for key in load(name, ROOT_CONFIGS):
            section, _, leaf = key.rpartition(".")
            assert leaf in (params[section] if section else params), (name, key)


def test_a_workspace_with_changed_params_is_refused_unless_asked(tmp_path, monkeypatch,
                                                                 capsys) -> None:
    import subprocess

    from rnnlm.cli.experiments import main

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "small.yaml").write_text("model.hidden: 16\n")
    (tmp_path / "params.yaml").write_text("model:\n  hidden: 256\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit", "-qm",
                 "x"]):
        subprocess.run(cmd, cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("model:\n  hidden: 512\n")  # an applied experiment
    with pytest.raises(SystemExit) as stopped:
        main(["run", "small"])
    assert stopped.value.code == 2
    assert "git checkout params.yaml" in capsys.readouterr().err
    main(["show", "small"])  # showing the command runs nothing: allowed
    assert capsys.readouterr().out == "dvc exp run -n small -S model.hidden=16\n"
