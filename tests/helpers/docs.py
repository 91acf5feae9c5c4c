"""The commands a documentation page shows: its fenced bash blocks, read as the shell reads them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

FENCE = re.compile(r"^(\s*)```(\w*)\s*$")


def bash_lines(page: Path) -> list[str]:
    """Every command line of the page's fenced bash blocks, comments and continuations joined
    and trailing `# ...` comments dropped (as the shell reads them), spaces normalised."""
    lines: list[str] = []
    language: str | None = None
    pending = ""
    for line in page.read_text(encoding="utf-8").splitlines():
        fence = FENCE.match(line)
        if fence:
            language = None if language is not None else fence.group(2)
            continue
        if language != "bash":
            continue
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an unfinished quote: the command goes on on the next line
            pending += " "
            continue
        pending = ""
        if words:
            lines.append(shlex.join(words))
    return lines


def normalised(command: str) -> str:
    return shlex.join(shlex.split(command))
