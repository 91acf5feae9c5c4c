"""The commands the README and the documentation show, run as written.

CHECKED names, exactly as the pages write them, the cheap commands whose output a reader sees
at once: each must appear in a fenced bash block of the README or of docs/, and each is run, as
the shell would run it, in a small project built in a temporary directory (the `workspace`
fixture's tiny models and store, the committed dvc.yaml and configs/), never in the repository's
own outputs or store. A page that changes one of these lines, or shows a new cheap one, fails
here until this list follows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.docs import bash_lines, normalised

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# command as the pages write it: what its output must contain
CHECKED: dict[str, str] = {
    "rnnlm --help": "usage: rnnlm COMMAND",
    "rnnlm generate --help": "usage: rnnlm generate",
    "rnnlm runs --help": "usage: rnnlm runs",
    "rnnlm exp --help": "usage: rnnlm exp",
    "rnnlm sync --help": "usage: rnnlm sync",
    "rnnlm serve --help": "usage: rnnlm serve",
    "rnnlm ui --help": "usage: rnnlm ui",
    "rnnlm plots --help": "usage: rnnlm plots",
    "dvc metrics show": "reports/metrics/rnn.json",
    "rnnlm runs": "test_ppl",
    'rnnlm generate --prefix "time traveller" --tokens 100 --temperature 0.8': "time traveller",
    'rnnlm generate --model ngram --prefix "time traveller" --tokens 200 --seed 0':
        "time traveller",
    "rnnlm exp list": "tinyshakespeare-char",
    "rnnlm exp show tinyshakespeare-char": "dvc exp run -n tinyshakespeare-char",
}

# The shown commands that count as cheap: a page showing one not in CHECKED fails the test.
CHEAP = re.compile(r"^rnnlm (\S+ )?--help$|^rnnlm (generate|runs)\b|^rnnlm exp (list|show)\b"
                   r"|^dvc metrics show$")




def shown() -> set[str]:
    return {line for page in PAGES for line in bash_lines(page)}


def test_the_checked_commands_are_shown_as_written() -> None:
    missing = [c for c in CHECKED if normalised(c) not in shown()]
    assert not missing, f"no page shows these in a bash block any more: {missing}"


def test_every_cheap_command_shown_is_checked() -> None:
    checked = {normalised(c) for c in CHECKED}
    unchecked = sorted(line for line in shown() if CHEAP.search(line) and line not in checked)
    assert not unchecked, f"add these to CHECKED in tests/test_docs.py: {unchecked}"


@pytest.fixture(scope="module")
def project(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DVC project holding the workspace fixture's tiny models, reports and store (as the
    project's default store, mlflow.db), the committed dvc.yaml and configs/."""
    work = tmp_path_factory.mktemp("docs") / "project"
    shutil.copytree(workspace, work)
    shutil.copy(work / "first.db", work / "mlflow.db")
    shutil.copy(ROOT / "dvc.yaml", work / "dvc.yaml")
    shutil.copytree(ROOT / "configs", work / "configs")
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "--no-scm", "-q"],
                   cwd=work, check=True)
    return work


def shell_env() -> dict[str, str]:
    """The environment of a reader whose venv is active, with no store or experiment set."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DVC_ROOT",
                        "DVC_EXP_NAME", "DVC_STAGE")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("command", list(CHECKED))
def test_the_shown_command_runs(command: str, project: Path) -> None:
    result = subprocess.run(["bash", "-c", command], cwd=project, env=shell_env(),
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command!r} exited {result.returncode}:\n{output}"
    assert CHECKED[command] in result.stdout, f"{command!r} printed:\n{output}"
