"""Benchmark: the ngram stage on word-level corpora of 100 MB and 1 GB, phase by phase.

For each size, generates a synthetic corpus under --tmp (bench_stream.py's, with a vocabulary
that grows with the corpus: a share `--rare` of the words get a random suffix; the default 0.01
gives about 1.2 million distinct words at 1 GB, 0.1 about 12 million), runs the data stages on
it (clean, tokenize, vocab, partition at word level), then the ngram stage (Kneser-Ney trigram)
exactly as `dvc repro` runs it: `python -m pipeline.ngram` in a fresh process, with its own
MLflow store. Reports the stage's wall time and peak resident memory, and the time and peak of
each phase (count, estimate, score, save, log) from the lines the stage logs; and the size of
the model directory and of what MLflow stored.

    python bench/bench_ngram_stage.py [--mb 100 1000] [--order 3] [--rare 0.01] [--tmp /tmp]
                                      [--out reports/bench/ngram-stage.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from _worker import exit_on_sigterm, run_watched, save
from bench_stream import build_corpus

ROOT = Path(__file__).resolve().parents[1]
DATA_STAGES = ("clean", "tokenize", "vocab", "partition")
TARGET_PEAK_GIB = 3.0
PHASE_LINE = re.compile(r"\[ngram\] (\w+): ([\d.]+) s, peak ([\d.]+) GiB")


def run_stage(stage: str, workdir: Path) -> tuple[float, float, str]:
    """Run `python -m pipeline.<stage>` in `workdir` as DVC would; its wall seconds, its peak
    resident memory in GiB (its own VmHWM) and its log."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
           "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    status, seconds, peak, log = run_watched([sys.executable, "-m", f"pipeline.{stage}"],
                                             cwd=workdir, env=env)
    if status:
        raise SystemExit(f"stage {stage} failed in {workdir}:\n{log}")
    return seconds, peak / 1024, log


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def prepare(megabytes: float, workdir: Path, order: int, rare: float) -> dict[str, object]:
    """The corpus and the data stages' outputs in `workdir`, with a params.yaml for the ngram
    stage (word level, every word kept, Kneser-Ney of `order`)."""
    (workdir / "data" / "raw").mkdir(parents=True)
    corpus = workdir / "data" / "raw" / "corpus.txt"
    build_corpus(corpus, megabytes, growing=True, rare_share=rare)
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["tokenize"]["level"] = "word"
    params["ngram"].update(method="kneser_ney", order=order)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    stages = {}
    for stage in DATA_STAGES:
        before = disk_mb(workdir / "data")
        seconds, peak, _ = run_stage(stage, workdir)
        written = disk_mb(workdir / "data") - before
        stages[stage] = {"seconds": seconds, "peak_gib": peak, "disk_mb": written}
        print(f"  {stage:>9}: {seconds:6.1f} s, peak {peak:.2f} GiB, {written:,.0f} MB written",
              flush=True)
    partition = json.loads((workdir / "reports" / "partition.json").read_text())
    return {"corpus_mb": corpus.stat().st_size / 1e6, "data_stages": stages,
            "tokens": {split: s["tokens"] for split, s in partition["splits"].items()}}


def measure_size(megabytes: float, tmp: Path, order: int, rare: float) -> dict[str, object]:
    workdir = tmp / f"ngram-{megabytes:g}mb"
    start = time.perf_counter()
    result = prepare(megabytes, workdir, order, rare)
    print(f"{megabytes:g} MB: {result['tokens']} tokens "
          f"({time.perf_counter() - start:.0f} s to prepare)", flush=True)
    os.sync()
    seconds, peak, log = run_stage("ngram", workdir)
    phases = {name: {"seconds": float(s), "peak_gib": float(p)}
              for name, s, p in PHASE_LINE.findall(log)}
    # Each phase resets the kernel's high-water mark, so the stage's is the largest of theirs
    # (and of what was read last).
    peak = max([peak, *(figures["peak_gib"] for figures in phases.values())])
    for name, figures in phases.items():
        print(f"  ngram {name:>8}: {figures['seconds']:6.1f} s, peak {figures['peak_gib']:.2f} GiB")
    print(f"  ngram stage: {seconds:.1f} s, peak {peak:.2f} GiB "
          f"(target {TARGET_PEAK_GIB} GiB)", flush=True)
    report = json.loads((workdir / "reports" / "ngram.json").read_text())
    result["vocab_size"] = report["vocab_size"]
    ngram = result["ngram"] = {
        "seconds": seconds, "peak_gib": peak, "phases": phases,
        "model_mb": disk_mb(workdir / "models" / "ngram"),
        "mlflow_artifacts_mb": disk_mb(workdir / "mlartifacts"),
        "val_ppl": report["val_ppl"],
        "ngrams": [pq.ParquetFile(path).metadata.num_rows
                   for path in sorted((workdir / "models" / "ngram").glob("order*.parquet"))],
    }
    print(f"  n-grams per order {ngram['ngrams']}, model directory {ngram['model_mb']:.0f} MB, "
          f"MLflow artifacts "
          f"{ngram['mlflow_artifacts_mb']:.0f} MB", flush=True)
    return result


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[100.0, 1000.0])
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--rare", type=float, default=0.01,
                        help="share of words given a random suffix (new words)")
    parser.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the corpora and the stages' outputs go (never the repository)")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/ngram-stage.json"))
    args = parser.parse_args()
    results = {}
    tmp = Path(tempfile.mkdtemp(prefix="rnnlm-bench-", dir=args.tmp))
    try:
        for megabytes in args.mb:
            results[f"{megabytes:g}"] = measure_size(megabytes, tmp, args.order, args.rare)
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
        else:
            print(f"kept {tmp}")
    peaks = [r["ngram"]["peak_gib"] for r in results.values()]  # type: ignore[index]
    save(args.out, {"order": args.order, "rare": args.rare, "sizes": results,
                    "target_peak_gib": TARGET_PEAK_GIB,
                    "peak_under_target": max(peaks) <= TARGET_PEAK_GIB})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
