"""dvc.yaml's code dependencies are exactly the modules each stage runs.

A stage `python -m pipeline.<stage>` runs its module and everything it imports, at any depth, at
module level or inside a function: that import closure, package `__init__` files included, must be
its list of `.py` deps, so that a stage reruns when code it runs changes, and only then. The one
exception is `rnnlm/settings.py` (and what only it imports): every stage validates the whole
params.yaml, whose values DVC tracks itself through each stage's `params`; depending on the file
would rerun every stage, training included, whenever any section's schema changed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Searched in this order, as `python -m` from the root with the package installed sees them.
SOURCE_ROOTS = (ROOT, ROOT / "src")
NOT_FOLLOWED = {"src/rnnlm/settings.py"}
OURS = ("pipeline", "rnnlm")


def module_file(name: str) -> Path | None:
    """The file of module `name` (a package's __init__.py), or None if it is not ours."""
    parts = name.split(".")
    if parts[0] not in OURS:
        return None
    for root in SOURCE_ROOTS:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module an import statement anywhere in `path` loads (`package`: the file's own)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # `from package import module` loads the submodule too.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    with_parents = set()
    for module in found:  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
        parts = module.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return with_parents


def closure(module: str) -> set[str]:
    """Files, relative to the root, that `python -m <module>` runs of ours."""
    seen: set[str] = set()
    pending = [module, *(".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1))]
    while pending:
        name = pending.pop()
        path = module_file(name)
        if path is None:
            continue
        rel = path.relative_to(ROOT).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        if rel in NOT_FOLLOWED:
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        pending.extend(imported_modules(path, package))
    return seen - NOT_FOLLOWED


def stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("name", sorted(stages()))
def test_code_deps_are_the_import_closure_of_the_stage(name: str) -> None:
    stage = stages()[name]
    module = stage["cmd"].removeprefix("python -m ").split()[0]
    declared = {d for d in stage["deps"] if isinstance(d, str) and d.endswith(".py")}
    expected = closure(module)
    assert declared == expected, (
        f"dvc.yaml stage {name!r}: missing {sorted(expected - declared)}, "
        f"not run {sorted(declared - expected)}; its code deps should be:\n"
        + "\n".join(f"      - {p}" for p in sorted(expected)))


# Files a module reads at run time, which change what the stage computes.
READS = {"src/rnnlm/neural/native/library.py": "src/rnnlm/neural/native/steps.cpp"}


@pytest.mark.parametrize("name", sorted(stages()))
def test_files_the_code_reads_are_deps_too(name: str) -> None:
    stage = stages()[name]
    module = stage["cmd"].removeprefix("python -m ").split()[0]
    for reader, read in READS.items():
        if reader in closure(module):
            assert read in stage["deps"], f"dvc.yaml stage {name!r} runs {reader}: add {read}"


def test_the_closure_follows_lazy_imports_and_stops_at_settings() -> None:
    generate = closure("rnnlm.cli.generate")
    assert "src/rnnlm/neural/inference.py" in generate  # imported inside a function
    assert "src/rnnlm/ngram/store.py" in generate
    download = closure("pipeline.download")
    assert "src/rnnlm/settings.py" not in download
    assert "src/rnnlm/neural/options.py" not in download  # reached through settings alone
    packages = {"pipeline/__init__.py", "src/rnnlm/__init__.py", "src/rnnlm/text/__init__.py"}
    assert packages <= download
