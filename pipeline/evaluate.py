"""Stage evaluate: every model scored on the same splits by the same protocol, compared in one
table, sampled side by side; test perplexity and samples added to each model's MLflow run."""

import json
import logging
from pathlib import Path

import numpy as np
from mlflow import MlflowClient

from rnnlm import tracking
from rnnlm.errors import RnnlmError
from rnnlm.generate import continue_text
from rnnlm.inference import NextTokenRNN, load_trained
from rnnlm.io import write_json, write_text
from rnnlm.ngram import UniformModel
from rnnlm.ngram_io import load_ngram
from rnnlm.perplexity import from_probs
from rnnlm.scoring import split_perplexity
from rnnlm.vocab import Vocab

from ._stage import run_stage
from .paths import (
    COMPARISON,
    METRICS,
    NGRAM_DIR,
    NGRAM_REPORT,
    RNN_DIR,
    SAMPLES,
    TRAIN_REPORT,
    VOCAB,
    ids_path,
)
from .settings import Params

SCORED = ("val", "test")


def comparison_table(rows: list[dict[str, object]]) -> str:
    lines = ["| model | what | size | val perplexity | test perplexity |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['what']} | {row['size']} | "
                     f"{row['val_ppl']:.3f} | {row['test_ppl']:.3f} |")
    return "\n".join(lines) + "\n"


def evaluate_stage(params: Params) -> None:
    e = params.evaluate
    uri, _ = tracking.connect()
    vocab = Vocab.load(VOCAB)
    ids = {split: np.load(ids_path(split)) for split in SCORED}
    task, _, rnn_meta = load_trained(RNN_DIR)
    ngram, _, ngram_text = load_ngram(NGRAM_DIR)
    if not task.vocab_size == ngram.vocab_size == len(vocab):
        raise RnnlmError(f"the models were fitted on different vocabularies (RNN "
                         f"{task.vocab_size}, n-gram {ngram.vocab_size}, now {len(vocab)}): "
                         "rerun `dvc repro`")
    unigram = ngram.truncated(1)
    m = rnn_meta["model"]
    rows: list[dict[str, object]] = [
        {"name": "rnn", "what": f"{m['kind']}, hidden {m['hidden']}, {m['num_layers']} layer(s)",
         "size": f"{sum(p.numel() for p in task.parameters()):,} parameters",
         **{f"{s}_ppl": split_perplexity(task, ids[s]) for s in SCORED}},
    ]
    for name, model, what in (("ngram", ngram, f"{ngram.method}, order {ngram.order}"),
                              ("unigram", unigram, f"{ngram.method}, order 1"),
                              ("uniform", UniformModel(len(vocab)), "1/V for every token")):
        size = (f"{sum(len(k) for k in model.counts.keys):,} n-grams"
                if name != "uniform" else f"V = {len(vocab)}")
        rows.append({"name": name, "what": what, "size": size,
                     **{f"{s}_ppl": from_probs(model.token_probs(ids[s])) for s in SCORED}})
    metrics = {row["name"]: {f"{s}_ppl": row[f"{s}_ppl"] for s in SCORED} for row in rows}

    samples = ["# Samples\n", f"Seed {params.seed}; sampled with temperature {e.temperature}"
               + (f", top-k {e.top_k}" if e.top_k else "") + f"; {e.tokens} tokens each.\n"]
    generators = (("rnn", NextTokenRNN(task), rnn_meta["text"]), ("ngram", ngram, ngram_text))
    for prefix in e.prefixes:
        samples.append(f"\n## {prefix!r}\n")
        for name, model, text in generators:
            greedy = continue_text(model, vocab, text, prefix, e.tokens, params.seed, 0.0)
            drawn = continue_text(model, vocab, text, prefix, e.tokens, params.seed,
                                  e.temperature, e.top_k or None)
            samples.append(f"- **{name}, greedy** (the book's prediction): {greedy}\n"
                           f"- **{name}, sampled**: {drawn}\n")
    samples_text = "".join(samples)

    write_json(METRICS, metrics)
    write_text(COMPARISON, "# Models on the same splits\n\n" + comparison_table(rows))
    write_text(SAMPLES, samples_text)
    log_to_runs(uri, {"rnn": TRAIN_REPORT, "ngram": NGRAM_REPORT}, metrics, samples_text)


def log_to_runs(uri: str, reports: dict[str, Path], metrics: dict[str, dict[str, float]],
                samples: str) -> None:
    """Add test perplexity and the samples to the runs that trained each model."""
    client = MlflowClient(uri)
    for name, report in reports.items():
        run_id = json.loads(report.read_text(encoding="utf-8")).get("mlflow_run_id")
        try:
            client.get_run(run_id)
        except Exception:  # the store was reset or moved since the model was fitted
            logging.warning("MLflow run %s of the %s model is not in %s; not logging to it",
                            run_id, name, uri)
            continue
        client.log_metric(run_id, "test_ppl", metrics[name]["test_ppl"])
        client.log_text(run_id, samples, "samples.md")


if __name__ == "__main__":
    run_stage("evaluate", evaluate_stage)
