"""Benchmark: the streaming data stages (clean, tokenize, vocab, partition) on large corpora.

Generates a synthetic corpus of each size under /tmp (Zipf-distributed words with capitals,
punctuation, line breaks and a few non-ASCII words, as bench_data.py does), then runs each stage
exactly as `dvc repro` would (`pipeline.<stage>` on a params.yaml of the repository's, in a
scratch directory), each in a fresh worker process so that its peak memory is its own. Reports
per stage and level: MB of raw corpus per second and peak RSS; with several sizes, each larger
size's throughput as a fraction of the smallest's (1.0 = cost grows linearly with the corpus).

    python bench/bench_stream.py [--mb 100 1000] [--out reports/bench/stream.json]
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
import yaml
from _worker import measure, peak_rss_mb, report

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("clean", "tokenize", "vocab", "partition")
LEVELS = ("char", "word")
TARGET_PEAK_MB = 2000.0
TARGET_RATIO = 0.8  # throughput on the large corpus within 20% of the small one's


def build_corpus(path: Path, megabytes: float, seed: int = 0) -> None:
    """Write about `megabytes` MB of Zipf-distributed words, a million words at a time."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    lengths = rng.integers(1, 11, size=30_000)
    lexicon = ["".join(rng.choice(letters, size=n)) for n in lengths]
    lexicon[:50] = [w.capitalize() for w in lexicon[:50]]
    lexicon += ["--", "1898", "Mr.", "naïve", "(so", "said:"]
    weights = 1.0 / np.arange(1, len(lexicon) + 1)  # Zipf's law
    weights /= weights.sum()
    target = int(megabytes * 1e6)
    written = 0
    with path.open("wb") as f:
        while written < target:
            picks = rng.choice(len(lexicon), size=1_000_000, p=weights)
            separators = np.where(rng.random(len(picks)) < 0.1, ",\n", " ")
            text = "".join(lexicon[i] + s for i, s in zip(picks.tolist(), separators,
                                                          strict=True))
            # Cut by characters, so that the file stays UTF-8 (a few words are not ASCII).
            written += f.write(text[: target - written].encode("utf-8"))


def worker(stage: str, workdir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.chdir(workdir)
    import importlib

    from pipeline.settings import load_params

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
    shutil.rmtree(workdir)
    return results


def run_size(megabytes: float, tmp: Path) -> dict[str, object]:
    corpus = tmp / f"corpus-{megabytes:g}mb.txt"
    start = time.perf_counter()
    build_corpus(corpus, megabytes)
    size_mb = corpus.stat().st_size / 1e6
    print(f"corpus: {size_mb:.1f} MB at {corpus} ({time.perf_counter() - start:.0f} s to make)",
          flush=True)
    result: dict[str, object] = {"corpus_mb": size_mb}
    for level in LEVELS:
        result[level] = run_level(corpus, level, tmp / f"work-{megabytes:g}")
    corpus.unlink()
    return result


def compare(results: dict[str, dict]) -> dict[str, object]:
    """Each size's throughput per stage as a fraction of the smallest size's, and the targets."""
    sizes = sorted(results, key=float)
    small = results[sizes[0]]
    summary: dict[str, object] = {}
    for size in sizes[1:]:
        for level in LEVELS:
            for stage in STAGES:
                ratio = (results[size][level][stage]["mb_per_s"]
                         / small[level][stage]["mb_per_s"])
                summary[f"{size}MB/{level}/{stage}"] = round(ratio, 3)
    peaks = [results[s][level][stage]["peak_rss_mb"]
             for s in sizes for level in LEVELS for stage in STAGES]
    return {
        "throughput_vs_smallest": summary,
        "max_peak_rss_mb": max(peaks),
        "peak_under_target": max(peaks) < TARGET_PEAK_MB,
        "linear_within_target": all(r >= TARGET_RATIO for r in summary.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[100.0, 1000.0],
                        help="corpus sizes in MB (the first is the reference for linearity)")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/stream.json"))
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
            results[f"{megabytes:g}"] = run_size(megabytes, Path(tmp))
    out = {"sizes": results, **(compare(results) if len(results) > 1 else {})}
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
