"""Figure: time-to-quality curves, val nats per character against wall seconds, from the results
of `bench/bench_quality.py` (one line per configuration, each point an epoch's validation).

Perplexity per token is turned into nats per character by `--chars-per-token` (1 at char level).

    python bench/plot_quality.py RESULTS.json [...] [--only NAME ...] [--label NAME=TEXT ...]
        [--chars-per-token 1] [--targets NATS ...] [--xlabel TEXT]
        [--out docs/img/time-to-quality.png]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--only", nargs="+", help="the configurations to draw (default: all)")
    parser.add_argument("--label", nargs="+", default=[], metavar="NAME=TEXT",
                        help="the legend's text for a configuration (default: its name)")
    parser.add_argument("--xlabel", default="wall seconds since the train stage started")
    parser.add_argument("--chars-per-token", type=float, default=1.0)
    parser.add_argument("--ylim", type=float, nargs=2, default=(1.3, 2.0))
    parser.add_argument("--targets", type=float, nargs="*", default=[],
                        help="horizontal lines: val nats/char to reach")
    parser.add_argument("--out", type=Path, default=Path("docs/img/time-to-quality.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    labels = dict(item.split("=", 1) for item in args.label)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    # Ten colours, then the same ten dashed: past ten lines the colours alone would repeat.
    ax.set_prop_cycle(cycler(linestyle=["-", "--"]) * cycler(color=plt.get_cmap("tab10").colors))
    for path in args.results:
        for name, run in json.loads(path.read_text()).items():
            if args.only and name not in args.only:
                continue
            seconds = [t for t, _ in run["curve"]]
            nats = [math.log(ppl) / args.chars_per_token for _, ppl in run["curve"]]
            ax.plot(seconds, nats, marker=".", label=labels.get(name, name))
    for target in args.targets:
        ax.axhline(target, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel(args.xlabel)
    ax.set_ylabel("val nats per character")
    ax.set_ylim(*args.ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
