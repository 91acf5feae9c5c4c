"""Benchmark: the bpe level's tokenize stage on a large corpus, its speed (MB/s of cleaned text,
learning the merges and encoding the splits apart) and peak memory, with 1 and 2 threads, beside
the `tokenizers` library alone on the same text in the same run.

The library alone: the same tokenizer (BPE, cut at line breaks and before spaces, the same
vocabulary size and special tokens) learns its merges from the training split's file
(`Tokenizer.train`, which reads it in Rust) and encodes every split's lines with `encode_batch`;
the split files are written before its clock starts. It is what a user of the library would
write, and keeps only the ids of each batch of lines.

The corpus is bench_stream's, seeded (the same bytes on every run): Zipf-distributed words of a
30,000-word lexicon with capitals, punctuation and line breaks; with `--vocab growing` one word in
ten gets a random six-letter suffix, so the vocabulary grows with the corpus. Each thread count runs
in a fresh process (the library's thread pool is sized once per process, by
RAYON_NUM_THREADS), so its peak RSS is that of the stage alone.

    python bench/bench_bpe.py [--mb 100] [--vocab fixed|growing] [--vocab-size 1024]
        [--threads 1 2] [--stage-only] [--out reports/bench/bpe.json]
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
import json, sys, time
from _worker import peak_rss_mb
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
print(json.dumps({"total_s": total, "learn_s": learning[0], "tokens": sizes,
                  "peak_rss": peak_rss_mb() * 2**20}))
"""

# The library alone. argv: the three split files, the vocabulary size. The tokenizer is set up
# here as rnnlm.text.bpe sets it up, rather than imported from there, so that this process holds
# the library and nothing of the project (whose imports alone would add to its peak).
LIBRARY = r"""
import json, sys, time
from _worker import peak_rss_mb
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
train_file, val_file, test_file = sys.argv[1:4]
vocab_size = int(sys.argv[4])
started = time.perf_counter()
tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex("\n+"), behavior="isolated"),
    pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")])
tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never")
trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>"],
                              show_progress=False)
tokenizer.train([train_file], trainer)
learned = time.perf_counter()
tokens = {}
for name, path in (("train", train_file), ("val", val_file), ("test", test_file)):
    count, batch = 0, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            batch.append(line)
            if len(batch) == 10000:
                count += sum(len(e.ids) for e in tokenizer.encode_batch(batch))
                batch = []
    if batch:
        count += sum(len(e.ids) for e in tokenizer.encode_batch(batch))
    tokens[name] = count
total = time.perf_counter() - started
print(json.dumps({"total_s": total, "learn_s": learned - started, "tokens": tokens,
                  "peak_rss": peak_rss_mb() * 2**20}))
"""


def main() -> None:
    from _worker import save
    from bench_stream import build_corpus

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size (default 100 MB)")
    parser.add_argument("--vocab", choices=("fixed", "growing"), default="fixed")
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--stage-only", action="store_true",
                        help="run the stage without the library alone (e.g. to see its memory "
                             "at 1 GB)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/bpe.json"))
    args = parser.parse_args()
    results: dict[str, object] = {"vocab_size": args.vocab_size}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "clean.txt"
        build_corpus(src, args.mb, growing=args.vocab == "growing")
        size = src.stat().st_size
        results |= {"corpus_bytes": size, "vocab": args.vocab}
        print(f"corpus: {size / 1e6:.1f} MB", flush=True)
        splits = write_splits(src, Path(tmp))
        for threads in args.threads:
            env = {**os.environ, "RAYON_NUM_THREADS": str(threads),
                   "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "bench")])}
            runs = {  # the stage and the library alone, one after the other, same text
                "stage": [CHILD, str(src), str(Path(tmp) / f"tokens{threads}"),
                          str(args.vocab_size)],
                "library": [LIBRARY, *map(str, splits), str(args.vocab_size)],
            }
            if args.stage_only:
                del runs["library"]
            for what, argv in runs.items():
                done = subprocess.run([sys.executable, "-c", *argv], env=env,
                                      capture_output=True, text=True, check=True)
                r = json.loads(done.stdout.strip().splitlines()[-1])
                encode_s = r["total_s"] - r["learn_s"]
                r |= {"mb_per_s": size / 1e6 / r["total_s"],
                      "learn_mb_per_s": 0.9 * size / 1e6 / r["learn_s"],
                      "encode_mb_per_s": size / 1e6 / encode_s}
                results[f"{what}_threads_{threads}"] = r
                print(f"{what:>7}, {threads} thread(s): {r['total_s']:.1f} s in all, "
                      f"{r['mb_per_s']:.1f} MB/s (learning on the train split "
                      f"{r['learn_s']:.1f} s, {r['learn_mb_per_s']:.1f} MB/s; encoding "
                      f"{encode_s:.1f} s, {r['encode_mb_per_s']:.1f} MB/s); "
                      f"peak RSS {r['peak_rss'] / 2**20:.0f} MiB; "
                      f"{sum(r['tokens'].values()):,} tokens", flush=True)
            if args.stage_only:
                continue
            stage, library = (results[f"{w}_threads_{threads}"] for w in ("stage", "library"))
            assert isinstance(stage, dict) and isinstance(library, dict)
            print(f"  the stage at {library['total_s'] / stage['total_s']:.2f}x the library's "
                  "speed", flush=True)
    save(args.out, results)


def write_splits(src: Path, where: Path) -> list[Path]:
    """The stage's three splits of `src` as files (train 0.9, val 0.05, test 0.05 of its
    characters, cut at the same places as the stage's), for the library alone."""
    from rnnlm.text import bpe

    with open(src, "rb") as f:
        bounds = bpe._byte_bounds(f, src.stat().st_size, 0.9, 0.05, False, None, None, str(src))
        paths = []
        for name in ("train", "val", "test"):
            start, stop = bounds[name]
            f.seek(start)
            path = where / f"{name}.txt"
            path.write_bytes(f.read(stop - start))
            paths.append(path)
    return paths


if __name__ == "__main__":
    main()
