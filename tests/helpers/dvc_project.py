"""A copy of the project in a temporary git + DVC repository, where the real `dvc` runs.

The copy holds the code under test as it is in the checkout (the tracked and new files of
pipeline/ and src/, dvc.yaml, .gitignore) and params.yaml as committed at HEAD: never the
workspace's parameters (an applied experiment), outputs, dvc.lock or MLflow store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from helpers.project import ROOT, SHARED_CORPUS, committed_text

STAGES = ("download", "clean", "tokenize", "vocab", "partition", "ngram", "train", "evaluate",
          "sequence")


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{result.stdout}\n{result.stderr}")
    return result


def stages_run(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


# A model small enough for the tests, trained on the CPU with one thread: with `auto` a training
# takes the cores the machine's other processes leave free, and this network's digits change
# with its thread count, so a rerun beside other work would not reproduce its outputs.
TINY_TRAINING = {("model", "hidden"): 16, ("train", "epochs"): 2, ("train", "accelerator"): "cpu",
                 ("train", "devices"): 1, ("train", "threads"): 1}


def set_param(repo: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def source_files() -> list[str]:
    """The code a DVC project needs: dvc.yaml, .gitignore and every file of pipeline/ and src/
    that git tracks or would track (new modules included; no caches, no build outputs)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "-z",
         "--", "dvc.yaml", ".gitignore", "pipeline", "src"],
        check=True, capture_output=True, text=True).stdout
    return sorted(name for name in set(listed.split("\0"))
                  if name and (ROOT / name).is_file())  # a deleted file stays listed: skip it


def make_repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The project's pipeline and sources in `tmp_path/repo`, committed; its environment."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in source_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    (repo / "params.yaml").write_text(committed_text("params.yaml"))
    env = {
        **os.environ,
        # Stage commands call `python`: this interpreter's, importing the copied sources.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(repo / "src"),
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "DVC_NO_ANALYTICS": "1",
    }
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DVC_ROOT", "DVC_EXP_NAME"):
        env.pop(name, None)  # the project's default store is under test
    if SHARED_CORPUS.is_file():
        # The offline mechanism: a cache holding the file under its URL's name.
        env["RNNLM_CACHE"] = str(SHARED_CORPUS.parent)
    else:
        cache = tmp_path / "cache"
        cache.mkdir()
        corpus = ("The Time Traveller (for so it will be convenient to speak of him) was "
                  "expounding a recondite matter to us. ") * 1500
        (cache / "timemachine.txt").write_text(corpus)
        env["RNNLM_CACHE"] = str(cache)
        set_param(repo, "data", "sha1", hashlib.sha1(corpus.encode()).hexdigest())
    for (section, key), value in TINY_TRAINING.items():
        set_param(repo, section, key, value)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "pipeline"]):
        run(cmd, repo, env)
    return repo, env
