"""What the benchmarks share: run a measurement in a fresh process so its peak memory is its own."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def report(result: dict[str, object]) -> None:
    """Called by a worker: print its result as the last line of stdout."""
    print(json.dumps(result))


def measure(script: str | Path, *args: str) -> dict[str, float]:
    """Run `script --worker args...` and return the JSON it reports."""
    out = subprocess.run([sys.executable, str(script), "--worker", *args],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def save(path: Path, results: object) -> None:
    """Write a benchmark's results as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
