"""Benchmark: the streaming data stages (clean, tokenize, vocab, partition) on large corpora.

Generates a synthetic corpus of each size under /tmp (Zipf-distributed words with capitals,
punctuation, line breaks and a few non-ASCII words, as bench_data.py does), then runs each stage
exactly as `dvc repro` would (`pipeline.<stage>` on a params.yaml of the repository's, in a
scratch directory), each in a fresh worker process so that its peak memory is its own. Reports
per stage and level: MB of raw corpus per second and peak RSS; with several sizes, each larger
size's throughput as a fraction of the smallest's (1.0 = cost grows linearly with the corpus).

`--vocab growing` makes one word in ten a lexicon word with a random six-letter suffix, so that
the vocabulary grows with the corpus (about a million distinct words at 100 MB) instead of
staying at the ~30K-word lexicon; `--levels word` skips the char level.

    python bench/bench_stream.py [--mb 100 1000] [--vocab fixed|growing] [--levels char word]
                                 [--out reports/bench/stream.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml
from _corpus import zipf_lexicon
from _worker import exit_on_sigterm, measure, peak_rss_mb, report

from rnnlm.text.token_files import DICTIONARY_FILE

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("clean", "tokenize", "vocab", "partition")
LEVELS = ("char", "word")
TARGET_PEAK_MB = 2000.0
TARGET_RATIO = 0.8  # throughput on the large corpus within 20% of the small one's


def build_corpus(path: Path, megabytes: float, seed: int = 0, growing: bool = False,
                 rare_share: float = 0.1) -> None:
    """Write about `megabytes` MB of Zipf-distributed words, a million words at a time; with
    `growing`, a share `rare_share` of the words (one in ten) are random lexicon words with a
    random suffix of six letters."""
    rng = np.random.default_rng(seed)
    lexicon, weights = zipf_lexicon(rng)
    target = int(megabytes * 1e6)
    written = 0
    with path.open("wb") as f:
        while written < target:
            picks = rng.choice(len(lexicon), size=1_000_000, p=weights)
            separators = np.where(rng.random(len(picks)) < 0.1, ",\n", " ")
            words = [lexicon[i] for i in picks.tolist()]
            if growing:
                rare = np.flatnonzero(rng.random(len(picks)) < rare_share)
                stems = rng.integers(0, len(lexicon), size=len(rare)).tolist()
                # Letters, which cleaning keeps (it drops digits): 26**6 suffixes.
                suffixes = (rng.integers(0, 26, size=6 * len(rare)) + ord("a")).astype(np.uint8)
                tails = suffixes.tobytes().decode("ascii")
                for k, (i, stem) in enumerate(zip(rare.tolist(), stems, strict=True)):
                    words[i] = lexicon[stem] + tails[6 * k : 6 * k + 6]
            text = "".join(w + s for w, s in zip(words, separators, strict=True))
            # Cut by characters, so that the file stays UTF-8 (a few words are not ASCII).
            written += f.write(text[: target - written].encode("utf-8"))


def worker(stage: str, workdir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.chdir(workdir)
    import importlib

    from pipeline._stage import use_jemalloc
    from rnnlm.settings import load_params

    use_jemalloc()  # as run_stage does
    module = importlib.import_module(f"pipeline.{stage}")
    body = getattr(module, {"tokenize": "tokenize_stage", "vocab": "vocab_stage"}.get(stage, stage))
    params = load_params()
    baseline = peak_rss_mb()
    start = time.perf_counter()
    body(params)
    report({"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
            "baseline_rss_mb": baseline})


def run_level(corpus: Path, level: str, scratch: Path) -> dict[str, dict[str, float]]:
    workdir = scratch / level
    (workdir / "data" / "raw").mkdir(parents=True)
    os.symlink(corpus, workdir / "data" / "raw" / "corpus.txt")
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["tokenize"]["level"] = level
    (workdir / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    size_mb = corpus.stat().st_size / 1e6
    results = {}
    with corpus.open("rb") as f:  # in the page cache at every size, as a 100 MB file would be
        while f.read(1 << 24):
            pass
    for stage in STAGES:
        # The previous stage's writes go to disk first, so that no stage pays for another's.
        os.sync()
        r = measure(__file__, stage, str(workdir))
        results[stage] = {
            "seconds": r["seconds"],
            "mb_per_s": size_mb / r["seconds"],
            "peak_rss_mb": r["peak_rss_mb"],
            "baseline_rss_mb": r["baseline_rss_mb"],
        }
        print(f"  {level:>4} {stage:>9}: {results[stage]['mb_per_s']:7.1f} MB/s "
              f"({r['seconds']:6.1f} s)  peak RSS {r['peak_rss_mb']:6.0f} MB "
              f"(baseline {r['baseline_rss_mb']:.0f} MB)", flush=True)
    tokens = json.loads((workdir / "reports" / "partition.json").read_text())["splits"]
    results["tokens"] = {"total": sum(split["tokens"] for split in tokens.values())}
    if level == "word":
        dictionary = workdir / "data" / "interim" / "tokens" / DICTIONARY_FILE
        results["tokens"]["distinct"] = pq.ParquetFile(dictionary).metadata.num_rows
    shutil.rmtree(workdir)
    return results


def run_size(megabytes: float, tmp: Path, levels: tuple[str, ...] = LEVELS,
             growing: bool = False) -> dict[str, object]:
    corpus = tmp / f"corpus-{megabytes:g}mb.txt"
    start = time.perf_counter()
    build_corpus(corpus, megabytes, growing=growing)
    size_mb = corpus.stat().st_size / 1e6
    print(f"corpus: {size_mb:.1f} MB at {corpus} ({time.perf_counter() - start:.0f} s to make)",
          flush=True)
    result: dict[str, object] = {"corpus_mb": size_mb}
    for level in levels:
        result[level] = run_level(corpus, level, tmp / f"work-{megabytes:g}")
        if level == "word":
            print(f"  word vocabulary: {result[level]['tokens']['distinct']} distinct words",
                  flush=True)
    corpus.unlink()
    return result


def compare(results: dict[str, dict]) -> dict[str, object]:
    """Each size's throughput per stage as a fraction of the smallest size's, and the targets."""
    sizes = sorted(results, key=float)
    small = results[sizes[0]]
    summary: dict[str, object] = {}
    levels = [level for level in LEVELS if level in small]
    for size in sizes[1:]:
        for level in levels:
            for stage in STAGES:
                ratio = (results[size][level][stage]["mb_per_s"]
                         / small[level][stage]["mb_per_s"])
                summary[f"{size}MB/{level}/{stage}"] = round(ratio, 3)
    peaks = [results[s][level][stage]["peak_rss_mb"]
             for s in sizes for level in levels for stage in STAGES]
    return {
        "throughput_vs_smallest": summary,
        "max_peak_rss_mb": max(peaks),
        "peak_under_target": max(peaks) < TARGET_PEAK_MB,
        "linear_within_target": all(r >= TARGET_RATIO for r in summary.values()),
    }


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[100.0, 1000.0],
                        help="corpus sizes in MB (the first is the reference for linearity)")
    parser.add_argument("--vocab", choices=("fixed", "growing"), default="fixed",
                        help="a ~30K-word lexicon, or a vocabulary that grows with the corpus")
    parser.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS))
    parser.add_argument("--out", type=Path, default=None,
                        help="default reports/bench/stream.json (stream-growing.json with "
                             "--vocab growing)")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the generated corpora and outputs go (never the repository)")
    parser.add_argument("--worker", nargs=2, metavar=("STAGE", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="rnnlm-bench-", dir=args.tmp) as tmp:
        for megabytes in args.mb:
            results[f"{megabytes:g}"] = run_size(megabytes, Path(tmp), tuple(args.levels),
                                                 growing=args.vocab == "growing")
    out = {"vocab": args.vocab, "sizes": results,
           **(compare(results) if len(results) > 1 else {})}
    if args.out is None:
        args.out = Path("reports/bench/stream-growing.json" if args.vocab == "growing"
                        else "reports/bench/stream.json")
    for key, ratio in out.get("throughput_vs_smallest", {}).items():  # type: ignore[union-attr]
        print(f"throughput {key} / {args.mb[0]:g} MB: {ratio:.2f}")
    if "max_peak_rss_mb" in out:
        print(f"max peak RSS {out['max_peak_rss_mb']:.0f} MB (target < {TARGET_PEAK_MB:.0f}); "
              f"linear within 20%: {out['linear_within_target']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
