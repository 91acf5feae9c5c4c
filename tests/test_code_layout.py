"""The house rules of the code's layout: a few rooms at the top of the package, each holding one
idea, and stage functions short enough to read at once."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_TOP_MODULES = 12
MAX_STAGE_FUNCTION_LINES = 40


def test_the_package_has_at_most_twelve_modules_at_its_top() -> None:
    modules = sorted(p.name for p in (ROOT / "src" / "rnnlm").glob("*.py")
                     if p.name != "__init__.py")
    assert len(modules) <= MAX_TOP_MODULES, modules


def test_no_function_of_the_pipeline_is_over_forty_lines() -> None:
    long = [f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in sorted((ROOT / "pipeline").glob("*.py"))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_STAGE_FUNCTION_LINES]
    assert not long, long
