"""Benchmark: fit a Kneser-Ney trigram on 10M word tokens and score 1M, ours against KenLM and NLTK.

The corpus is real text cut into 20-word pieces, shuffled and repeated until it holds
train + score tokens. Ours runs the whole job in a fresh process (time and peak memory). NLTK's
`KneserNeyInterpolated` cannot finish that job in reasonable time, so it is fitted on a subset
and scored on a few thousand tokens; its full-job time is extrapolated linearly from those
rates. That favours NLTK: its scoring slows down as the model grows.

KenLM runs where its `lmplz` is found (`--kenlm DIR`, else on PATH) and its Python module
imports: `lmplz -o 3 --discount_fallback -S 100M` fits the train tokens, written as one line of
words (`-S`, lmplz's sorting memory, `--kenlm-memory`: its default, 80% of the machine's memory,
made it 3x slower here than 100M, 300M or 1G, which ran alike),
and the module scores the held-out tokens one state at a time from an empty context, the same
protocol as ours. Its time is lmplz's plus the scorer's (loading the ARPA file included); its
peak memory is the larger of the two processes'. docs/performance.md says how to build KenLM.

    python bench/bench_ngram.py [--text FILE ...] [--train 10000000] [--score 1000000]
                                [--kenlm DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _worker import exit_on_sigterm, measure, peak_rss_mb, report, run_watched


def build_stream(texts: list[Path], n_tokens: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """Word ids of the texts in shuffled 20-word pieces, repeated to `n_tokens`; and V."""
    from rnnlm.text.clean import clean_text
    from rnnlm.text.tokenizers import tokenize
    from rnnlm.text.vocab import Vocab

    text = " ".join(clean_text(p.read_text(encoding="utf-8"), "d2l") for p in texts)
    words = tokenize(text, "word")
    vocab = Vocab.build(words)
    ids = vocab.encode(words).astype(np.int32)
    pieces = np.array_split(ids, max(len(ids) // 20, 1))
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    total = 0
    while total < n_tokens:
        for j in rng.permutation(len(pieces)):
            chosen.append(pieces[j])
            total += len(pieces[j])
    return np.concatenate(chosen)[:n_tokens], len(vocab)


def ours(stream: np.ndarray, n_train: int, vocab_size: int) -> dict[str, float]:
    from rnnlm.ngram.counts import NgramCounts
    from rnnlm.ngram.model import kneser_ney

    baseline = peak_rss_mb()
    start = time.perf_counter()
    counts = NgramCounts.fit(stream[:n_train], 3, vocab_size)
    fitted = time.perf_counter()
    model = kneser_ney(counts)
    built = time.perf_counter()
    ppl = model.perplexity(stream[n_train:])  # as the stage scores: in chunks, on every core
    scored = time.perf_counter()
    return {"count_s": fitted - start, "estimate_s": built - fitted, "score_s": scored - built,
            "total_s": scored - start, "ppl": ppl, "peak_rss_mb": peak_rss_mb(),
            "baseline_rss_mb": baseline}


def nltk(stream: np.ndarray, n_train: int, n_score: int) -> dict[str, float]:
    from nltk.lm import KneserNeyInterpolated
    from nltk.util import everygrams

    words = [str(i) for i in stream[: n_train + n_score].tolist()]
    train, held_out = words[:n_train], words[n_train:]
    start = time.perf_counter()
    model = KneserNeyInterpolated(3)
    model.fit([everygrams(train, max_len=3)], vocabulary_text=words)
    fitted = time.perf_counter()
    # The same protocol as ours: every token after the first, from up to 2 tokens before it.
    nll = -sum(model.logscore(held_out[i], held_out[max(i - 2, 0) : i])
               for i in range(1, len(held_out))) * math.log(2)
    scored = time.perf_counter()
    return {"fit_s": fitted - start, "score_s": scored - fitted,
            "fit_tokens_per_s": n_train / (fitted - start),
            "score_tokens_per_s": (n_score - 1) / (scored - fitted),
            "ppl": math.exp(nll / (n_score - 1))}


def lmplz(binary: Path, stream: np.ndarray, n_train: int, tmp: Path, memory: str
          ) -> dict[str, float]:
    """Fit KenLM's trigram on the train tokens: its wall time and peak memory."""
    text = tmp / "train.txt"
    with text.open("w") as f:
        for start in range(0, n_train, 1_000_000):
            f.write(" ".join(f"w{i}" for i in stream[start : min(start + 1_000_000, n_train)]))
            f.write(" ")
        f.write("\n")
    arpa = tmp / "model.arpa"
    with text.open("rb") as source, arpa.open("wb") as out:
        status, seconds, peak, _ = run_watched(
            [str(binary), "-o", "3", "--discount_fallback", "-S", memory], stdin=source,
            stdout=out, stderr=subprocess.DEVNULL)
    if status:
        raise SystemExit(f"lmplz failed with status {status}")
    return {"fit_s": seconds, "fit_peak_rss_mb": peak}


def kenlm_score(arpa: str, stream_path: str, n_train: str) -> dict[str, float]:
    import kenlm

    held_out = [f"w{i}" for i in np.load(stream_path)[int(n_train) :].tolist()]
    start = time.perf_counter()
    model = kenlm.Model(arpa)
    state, out = kenlm.State(), kenlm.State()
    model.NullContextWrite(state)
    log10 = 0.0
    for i, word in enumerate(held_out):
        score = model.BaseScore(state, word, out)
        if i:  # every token after the first, as ours
            log10 += score
        state, out = out, state
    return {"score_s": time.perf_counter() - start,
            "ppl": 10 ** (-log10 / (len(held_out) - 1)), "score_peak_rss_mb": peak_rss_mb()}


def kenlm(binary: Path, stream: np.ndarray, stream_path: Path, n_train: int, tmp: Path,
          memory: str) -> dict[str, float]:
    fit = lmplz(binary, stream, n_train, tmp, memory)
    scored = measure(__file__, "kenlm", str(stream_path), str(tmp / "model.arpa"), str(n_train))
    return {**fit, **scored, "total_s": fit["fit_s"] + scored["score_s"],
            "peak_rss_mb": max(fit["fit_peak_rss_mb"], scored["score_peak_rss_mb"])}


def find_lmplz(directory: Path | None) -> Path | None:
    found = shutil.which("lmplz", path=str(directory) if directory else None)
    if found is None:
        return None
    try:
        import kenlm  # noqa: F401
    except ImportError:
        print("KenLM's lmplz is there but not its Python module (pip install kenlm): "
              "KenLM skipped", file=sys.stderr)
        return None
    return Path(found)


def worker(variant: str, stream_path: str, *sizes: str) -> None:
    stream = np.load(stream_path)
    if variant == "ours":
        report(ours(stream, int(sizes[0]), int(sizes[1])))
    elif variant == "kenlm":
        report(kenlm_score(sizes[0], stream_path, sizes[1]))
    else:
        report(nltk(stream, int(sizes[0]), int(sizes[1])))


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, nargs="+", default=[Path("data/raw/corpus.txt")],
                        help="real text to cut, shuffle and repeat (default: the corpus)")
    parser.add_argument("--train", type=int, default=10_000_000)
    parser.add_argument("--score", type=int, default=1_000_000)
    parser.add_argument("--nltk-train", type=int, default=200_000)
    parser.add_argument("--nltk-score", type=int, default=1_000)
    parser.add_argument("--kenlm", type=Path, default=None,
                        help="the directory of KenLM's lmplz (default: PATH)")
    parser.add_argument("--kenlm-memory", default="100M", help="lmplz's -S")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/ngram.json"))
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    stream, vocab_size = build_stream(args.text, args.train + args.score)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.npy"
        np.save(path, stream)
        mine = measure(__file__, "ours", str(path), str(args.train), str(vocab_size))
        binary = find_lmplz(args.kenlm)
        theirs_kenlm = (kenlm(binary, stream, path, args.train, Path(tmp), args.kenlm_memory)
                        if binary else None)
        theirs = measure(__file__, "nltk", str(path), str(args.nltk_train), str(args.nltk_score))
    nltk_estimate = (args.train / theirs["fit_tokens_per_s"]
                     + args.score / theirs["score_tokens_per_s"])
    result = {
        "train_tokens": args.train, "score_tokens": args.score, "vocab_size": vocab_size,
        "ours": mine, "nltk_subset": {"train_tokens": args.nltk_train,
                                      "score_tokens": args.nltk_score, **theirs},
        "nltk_estimated_total_s": nltk_estimate,
        "speedup": nltk_estimate / mine["total_s"],
    }
    print(f"corpus: {args.train:,} train + {args.score:,} scored word tokens, V = {vocab_size:,}")
    print(f"ours: {mine['total_s']:.1f} s (count {mine['count_s']:.1f}, estimate "
          f"{mine['estimate_s']:.1f}, score {mine['score_s']:.1f}), "
          f"peak RSS {mine['peak_rss_mb']:.0f} MB, ppl {mine['ppl']:.2f}")
    print(f"nltk on {args.nltk_train:,} + {args.nltk_score:,} tokens: fit "
          f"{theirs['fit_tokens_per_s']:,.0f} tokens/s, score "
          f"{theirs['score_tokens_per_s']:,.0f} tokens/s -> the full job extrapolated: "
          f"{nltk_estimate:,.0f} s")
    print(f"speed-up: {result['speedup']:.0f}x")
    if theirs_kenlm is not None:
        result["kenlm"] = theirs_kenlm
        result["speedup_over_kenlm"] = theirs_kenlm["total_s"] / mine["total_s"]
        result["ppl_relative_difference"] = abs(mine["ppl"] / theirs_kenlm["ppl"] - 1)
        print(f"KenLM: {theirs_kenlm['total_s']:.1f} s (lmplz {theirs_kenlm['fit_s']:.1f}, "
              f"load + score {theirs_kenlm['score_s']:.1f}), peak RSS "
              f"{theirs_kenlm['peak_rss_mb']:.0f} MB, ppl {theirs_kenlm['ppl']:.4f}")
        print(f"ours / KenLM: {result['speedup_over_kenlm']:.2f}x as fast, perplexities differ "
              f"by {result['ppl_relative_difference']:.1e} (relative)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
