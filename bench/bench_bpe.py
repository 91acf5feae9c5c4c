"""Benchmark: the bpe level's tokenize stage on a large corpus, its speed (MB/s of cleaned text,
learning the merges and encoding the splits apart) and peak memory, with 1 and 2 threads.

The corpus is bench_stream's, seeded (the same bytes on every run): Zipf-distributed words of a
30,000-word lexicon with capitals, punctuation and line breaks; with `--vocab growing` one word in
ten gets a random six-letter suffix, so the vocabulary grows with the corpus. Each thread count runs
in a fresh process (the library's thread pool is sized once per process, by
RAYON_NUM_THREADS), so its peak RSS is that of the stage alone.

    python bench/bench_bpe.py [--mb 100] [--vocab fixed|growing] [--vocab-size 1024]
        [--out reports/bench/bpe.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from rnnlm.text import bpe
learning = []
learn = bpe.learn
def timed(*args, **kwargs):
    started = time.perf_counter()
    # The trainer pulls the text through the iterator: reading it is part of learning.
    model = learn(*args, **kwargs)
    learning.append(time.perf_counter() - started)
    return model
bpe.learn = timed
src, out, vocab_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
sizes = bpe.tokenize_bpe_file(src, out, vocab_size, 0.9, 0.05)
total = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"total_s": total, "learn_s": learning[0], "tokens": sizes, "peak_rss": peak}))
"""


def main() -> None:
    from _worker import save
    from bench_stream import build_corpus

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size (default 100 MB)")
    parser.add_argument("--vocab", choices=("fixed", "growing"), default="fixed")
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/bpe.json"))
    args = parser.parse_args()
    results: dict[str, object] = {"vocab_size": args.vocab_size}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "clean.txt"
        build_corpus(src, args.mb, growing=args.vocab == "growing")
        size = src.stat().st_size
        results |= {"corpus_bytes": size, "vocab": args.vocab}
        print(f"corpus: {size / 1e6:.1f} MB", flush=True)
        for threads in (1, 2):
            env = {**os.environ, "RAYON_NUM_THREADS": str(threads),
                   "PYTHONPATH": str(ROOT / "src")}
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(src), str(Path(tmp) / f"tokens{threads}"),
                 str(args.vocab_size)], env=env, capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            encode_s = r["total_s"] - r["learn_s"]
            r |= {"mb_per_s": size / 1e6 / r["total_s"],
                  "learn_mb_per_s": 0.9 * size / 1e6 / r["learn_s"],
                  "encode_mb_per_s": size / 1e6 / encode_s}
            results[f"threads_{threads}"] = r
            print(f"{threads} thread(s): {r['total_s']:.1f} s in all, {r['mb_per_s']:.1f} MB/s "
                  f"(learning on the train split {r['learn_s']:.1f} s, "
                  f"{r['learn_mb_per_s']:.1f} MB/s; splitting and encoding "
                  f"{encode_s:.1f} s, {r['encode_mb_per_s']:.1f} MB/s); "
                  f"peak RSS {r['peak_rss'] / 2**20:.0f} MiB; "
                  f"{sum(r['tokens'].values()):,} tokens", flush=True)
    save(args.out, results)


if __name__ == "__main__":
    main()
