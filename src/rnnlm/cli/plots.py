"""The project's plots as one page that needs no network: `rnnlm plots [--diff [REVISION ...]]`.

`dvc plots show` and `dvc plots diff` write an HTML page that loads its chart renderer from the
web, so offline its charts are silently missing. This page holds every plot of `dvc plots show
--json` (or, with `--diff`, of `dvc plots diff --json`: the revisions overlaid in each chart)
already drawn: the Vega-Lite charts rendered to SVG by vl-convert (which bundles the renderer),
the images embedded. Open it in any browser, also without a connection.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rnnlm.errors import RnnlmError, exit_with_message
from rnnlm.io import write_text

DEFAULT_PAGE = Path("dvc_plots/offline.html")


def plot_specs(cwd: Path | None = None,
               revisions: Sequence[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """`dvc plots show --json`'s plots, by file; with `revisions`, `dvc plots diff --json`'s
    (no revision: the workspace against HEAD; one: the workspace against it)."""
    command = ["dvc", "plots", "show", "--json"] if revisions is None else [
        "dvc", "plots", "diff", "--json", *revisions]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RnnlmError(f"`{' '.join(command)}` failed: {result.stderr.strip()[-500:]}\n"
                         "Fix: run it from the repository, after `dvc repro`, naming commits, "
                         "branches, tags or experiments that exist (`dvc exp list`)")
    return json.loads(result.stdout).get("data", {})


def drawn(plot: Mapping[str, Any]) -> str:
    """One plot as HTML: a Vega-Lite chart as inline SVG, an image as an embedded PNG."""
    if plot.get("type") == "vega":
        import vl_convert

        return vl_convert.vegalite_to_svg(plot["content"])
    if plot.get("type") == "image":
        data = base64.b64encode(Path(plot["url"]).read_bytes()).decode("ascii")
        return f'<img alt="" src="data:image/png;base64,{data}">'
    return f"<p>(a plot of type {html.escape(str(plot.get('type')))} is not drawn here)</p>"


def page(plots: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    sections = []
    for name, versions in plots.items():
        for plot in versions:
            revisions = ", ".join(plot.get("revisions") or [])
            sections.append(f"<section><h2>{html.escape(name)}</h2>"
                            f"<p class=rev>{html.escape(revisions)}</p>{drawn(plot)}</section>")
    return ("<!doctype html><html><head><meta charset=utf-8><title>rnnlm plots</title>"
            "<style>body{font-family:sans-serif;margin:2em}h2{font-size:1.1em;margin-bottom:0}"
            ".rev{color:#666;margin-top:.2em}img{max-width:100%}</style></head><body>"
            "<h1>rnnlm plots</h1>" + "".join(sections) + "</body></html>\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_PAGE,
                        help="the page to write (default: %(default)s)")
    parser.add_argument("--diff", nargs="*", metavar="REVISION", dest="revisions",
                        help="compare revisions as `dvc plots diff` does: Git commits, branches, "
                        "tags or DVC experiments (none: the workspace against HEAD; one: the "
                        "workspace against it)")
    args = parser.parse_args(argv)
    with exit_with_message():
        plots = plot_specs(revisions=args.revisions)
    write_text(args.out, page(plots))
    print(f"wrote {args.out} ({sum(len(v) for v in plots.values())} plots; no network needed)")


if __name__ == "__main__":
    main()
