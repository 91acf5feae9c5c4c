"""Benchmark: clean + tokenize + vocab + encode, ours against the book's plain-Python style.

Builds a synthetic corpus of about 100 MB (Zipf-distributed words with capitals, punctuation and
line breaks), then runs each variant in a fresh worker process so its peak memory is its own.
Prints MB/s, the speed-up over the reference and peak memory, and writes reports/bench/data.json.

    python bench/bench_data.py [--mb 100] [--out reports/bench/data.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _corpus import zipf_lexicon
from _worker import exit_on_sigterm, measure, peak_rss_mb, report


def build_corpus(path: Path, megabytes: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    lexicon, weights = zipf_lexicon(rng)
    words_needed = int(megabytes * 1e6 / 6.3)
    picks = rng.choice(len(lexicon), size=words_needed, p=weights)
    separators = np.where(rng.random(words_needed) < 0.1, ",\n", " ")
    with path.open("w", encoding="utf-8") as f:
        for start in range(0, words_needed, 1_000_000):
            stop = start + 1_000_000
            f.write("".join(w + s for w, s in zip([lexicon[i] for i in picks[start:stop]],
                                                  separators[start:stop], strict=True)))


class BookVocab:
    """The book's Vocab: tokens sorted by frequency, a dict for lookups through __getitem__."""

    def __init__(self, tokens: list[str]) -> None:
        counter = collections.Counter(tokens)
        self.token_freqs = sorted(counter.items(), key=lambda x: x[1], reverse=True)
        self.idx_to_token = ["<unk>"] + [token for token, _ in self.token_freqs]
        self.token_to_idx = {token: idx for idx, token in enumerate(self.idx_to_token)}

    def __getitem__(self, token: str) -> int:
        return self.token_to_idx.get(token, 0)


def reference(text: str, level: str) -> int:
    # The 2.0 edition's preprocessing (one regex over the whole text), so both variants
    # produce exactly the same tokens and their counts can be checked against each other.
    cleaned = re.sub("[^A-Za-z]+", " ", text).lower()
    tokens = list(cleaned) if level == "char" else cleaned.split()
    vocab = BookVocab(tokens)
    ids = [vocab[token] for token in tokens]
    return len(ids)


def ours(text: str, level: str) -> int:
    from rnnlm.text.clean import clean_text
    from rnnlm.text.tokenizers import tokenize
    from rnnlm.text.vocab import Vocab

    stream = tokenize(clean_text(text, "d2l"), level)
    ids = Vocab.build(stream).encode(stream)
    return len(ids)


def worker(variant: str, level: str, corpus: Path) -> None:
    import pyarrow  # noqa: F401  (imported up front so its memory counts in the baseline)


    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pipeline._stage import use_jemalloc

    use_jemalloc()  # Arrow's memory pool as the stages run it

    text_in = corpus.read_text(encoding="utf-8")
    baseline = peak_rss_mb()
    start = time.perf_counter()
    n_tokens = (ours if variant == "ours" else reference)(text_in, level)
    seconds = time.perf_counter() - start
    report({"seconds": seconds, "tokens": n_tokens, "peak_rss_mb": peak_rss_mb(),
            "baseline_rss_mb": baseline})


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size in MB")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/data.json"))
    parser.add_argument("--worker", nargs=3, metavar=("VARIANT", "LEVEL", "CORPUS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], Path(args.worker[2]))
        return

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        build_corpus(corpus, args.mb)
        size_mb = corpus.stat().st_size / 1e6
        print(f"corpus: {size_mb:.1f} MB (synthetic, Zipf words, capitals, punctuation, newlines)")
        results: dict[str, dict[str, object]] = {}
        for level in ("char", "word"):
            mine = measure(__file__, "ours", level, str(corpus))
            ref = measure(__file__, "reference", level, str(corpus))
            if mine["tokens"] != ref["tokens"]:
                raise SystemExit(f"{level}: token counts differ: {mine} vs {ref}")
            results[level] = {
                "tokens": mine["tokens"],
                "ours_mb_per_s": size_mb / mine["seconds"],
                "reference_mb_per_s": size_mb / ref["seconds"],
                "speedup": ref["seconds"] / mine["seconds"],
                "ours_seconds": mine["seconds"],
                "reference_seconds": ref["seconds"],
                "ours_peak_rss_mb": mine["peak_rss_mb"],
                "ours_peak_over_baseline_mb": mine["peak_rss_mb"] - mine["baseline_rss_mb"],
                "ours_peak_over_corpus_size": mine["peak_rss_mb"] * 1.048576 / size_mb,
                "reference_peak_rss_mb": ref["peak_rss_mb"],
            }
            r = results[level]
            print(f"{level:>4}: ours {r['ours_mb_per_s']:7.1f} MB/s  reference "
                  f"{r['reference_mb_per_s']:5.1f} MB/s  speed-up {r['speedup']:5.1f}x  "
                  f"peak RSS ours {r['ours_peak_rss_mb']:.0f} MB "
                  f"({r['ours_peak_over_corpus_size']:.1f}x corpus; "
                  f"+{r['ours_peak_over_baseline_mb']:.0f} MB over baseline), "
                  f"reference {r['reference_peak_rss_mb']:.0f} MB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"corpus_mb": size_mb, **results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
