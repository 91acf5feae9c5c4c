"""Stage evaluate: every model scored on the test split by the same protocol, compared in one
table with the val perplexity its own stage measured, and on both splits in bits per character
(comparable across tokenizations), sampled side by side; test perplexity, bits per character and
samples written to reports/evaluation.json and added to each model's MLflow run by the store
sync, which also registers the models."""

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rnnlm.errors import RnnlmError
from rnnlm.io import write_json, write_text
from rnnlm.layout import (
    COMPARISON,
    EVALUATION,
    NGRAM_DIR,
    NGRAM_REPORT,
    RNN_DIR,
    SAMPLES,
    TOKENS_DIR,
    TRAIN_REPORT,
    VOCAB,
    metrics_path,
)
from rnnlm.neural.inference import TrainedNetwork, load_trained
from rnnlm.ngram.model import NgramModel, UniformModel
from rnnlm.ngram.store import load_ngram
from rnnlm.sampling import NextTokenModel, continue_text, derived_seed
from rnnlm.scoring import Scorable, bits_per_character, perplexities
from rnnlm.settings import EvaluateParams, Params
from rnnlm.text.characters import covered_characters
from rnnlm.text.token_files import num_tokens
from rnnlm.text.vocab import Vocab
from rnnlm.tracking import connection
from rnnlm.tracking.sync import report, sync
from rnnlm.tracking.workspace import Evaluation, workspace_models

from ._stage import load_ids, run_stage


def comparison_table(rows: Sequence[Mapping[str, object]]) -> str:
    lines = ["| model | what | size | val perplexity | test perplexity | val bits/char | "
             "test bits/char |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['what']} | {row['size']} | "
                     f"{row['best_val_ppl']:.3f} | {row['test_ppl']:.3f} | "
                     f"{row['val_bpc']:.4f} | {row['test_bpc']:.4f} |")
    return "\n".join(lines) + "\n"


def read_report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def evaluate_stage(params: Params) -> None:
    connection.connect()  # a store that cannot be used stops the stage before any work
    fitted = workspace_models()  # the models, checked against the reports that describe them
    vocab = Vocab.load(VOCAB)
    test = load_ids(["test"], mmap=False)
    task, _, rnn_meta = load_trained(RNN_DIR)
    ngram, _, ngram_text = load_ngram(NGRAM_DIR)
    if not task.vocab_size == ngram.vocab_size == len(vocab):
        raise RnnlmError(f"the models were fitted on different vocabularies (RNN "
                         f"{task.vocab_size}, n-gram {ngram.vocab_size}, now {len(vocab)}): "
                         "rerun `dvc repro`")
    network = TrainedNetwork(task)
    models = compared_models(network, rnn_meta["model"], ngram)
    scores = {name: {"best_val_ppl": val, **perplexities(model, test, name)}
              for name, model, _, _, val in models}
    per_character = CharacterScale(params)
    for score in scores.values():
        score["val_bpc"] = per_character.bpc("val", score["best_val_ppl"])
        score["test_bpc"] = per_character.bpc("test", score["test_ppl"])
    rows = [{"name": name, "what": what, "size": size, **scores[name]}
            for name, _, what, size, _ in models]
    samples = {name: samples_text(params.evaluate, params.seed, vocab, name, model, text)
               for name, model, text in (("rnn", network, rnn_meta["text"]),
                                         ("ngram", ngram, ngram_text))}
    # DVC's metrics: the models themselves; the references stand in the table and the runs.
    for name in ("rnn", "ngram"):
        write_json(metrics_path(name), {"val_ppl": scores[name]["best_val_ppl"],
                                        **{key: scores[name][key] for key in METRIC_KEYS}},
                   sort_keys=False)
    table = comparison_table(rows)
    write_text(COMPARISON, "# Models on the same splits\n\n" + table)
    write_text(SAMPLES, samples_page(params.evaluate, params.seed, samples))
    print(f"\n{table}")  # the pipeline's result, where `dvc repro` shows it
    evaluations = {model.role: evaluation(model.role, model.record.model_checksum, scores,
                                          samples[model.role]) for model in fitted}
    write_json(EVALUATION, {role: e.to_json() for role, e in evaluations.items()})
    fitted = [replace(model, evaluation=evaluations[model.role]) for model in fitted]
    # The runs and the registry from the outputs just written: the same step as `make repro`'s
    # sync after a `dvc repro` that skipped this stage.
    print(report(fitted, sync(fitted)))


# After val_ppl, in the order `dvc metrics show` prints them.
METRIC_KEYS = ("test_ppl", "val_bpc", "test_bpc")
# The models whose figures go to each fitted model's run: the n-gram's run also gets its unigram
# and uniform references' (`unigram_test_ppl`, ...).
SCORED_WITH = {"rnn": ("rnn",), "ngram": ("ngram", "unigram", "uniform")}


def evaluation(role: str, checksum: str, scores: Mapping[str, Mapping[str, float]],
               samples: Mapping[str, str]) -> Evaluation:
    """What the store sync adds to the model's run and its registry version."""
    metrics = {("" if model == role else f"{model}_") + key: scores[model][key]
               for model in SCORED_WITH[role] for key in METRIC_KEYS}
    figures = {"val_ppl": scores[role]["best_val_ppl"],
               **{key: scores[role][key] for key in METRIC_KEYS}}
    page = "".join(f"## {prefix!r}\n{text}\n" for prefix, text in samples.items())
    return Evaluation(checksum, metrics, figures, page)


class CharacterScale:
    """Bits per character of each split from a perplexity over its tokens (rnnlm.text.characters
    says which characters count)."""

    def __init__(self, params: Params) -> None:
        level, separator = params.tokenize.level, params.data.document_separator
        self.scored = {split: num_tokens(TOKENS_DIR, split) - 1 for split in ("val", "test")}
        self.characters = {split: covered_characters(TOKENS_DIR, split, level, separator)
                           for split in ("val", "test")}

    def bpc(self, split: str, perplexity: float) -> float:
        return bits_per_character(perplexity, self.scored[split], self.characters[split])


def compared_models(network: TrainedNetwork, model: Mapping[str, Any], ngram: NgramModel
                    ) -> list[tuple[str, Scorable, str, str, float]]:
    """(name, model, what, size, val perplexity) of each model and reference. The val figures
    are the ones the fitting stages measured (the RNN's: its best epoch, the checkpoint scored
    here); the test split is scored here only."""
    trained, fitted = read_report(TRAIN_REPORT), read_report(NGRAM_REPORT)
    parameters = sum(p.numel() for p in network.task.parameters())
    v = ngram.vocab_size
    return [
        ("rnn", network, f"{model['kind']}, hidden {model['hidden']}, "
         f"{model['num_layers']} layer(s)", f"{parameters:,} parameters", trained["best_val_ppl"]),
        ("ngram", ngram, f"{ngram.method}, order {ngram.order}",
         f"{sum(len(k) for k in ngram.counts.keys):,} n-grams", fitted["val_ppl"]),
        ("unigram", ngram.truncated(1), f"{ngram.method}, order 1",
         f"{len(ngram.counts.keys[0]):,} n-grams", fitted["unigram"]["val_ppl"]),
        ("uniform", UniformModel(v), "1/V for every token", f"V = {v}",
         fitted["uniform"]["val_ppl"]),
    ]


def samples_text(e: EvaluateParams, seed: int, vocab: Vocab, name: str, model: NextTokenModel,
                 text: Mapping[str, object]) -> dict[str, str]:
    """One model continuing each prefix, greedily (the book's prediction) and sampled, as a
    Markdown list per prefix."""
    out = {}
    for prefix in e.prefixes:
        greedy = continue_text(model, vocab, text, prefix, e.tokens, seed, 0.0)
        drawn = continue_text(model, vocab, text, prefix, e.tokens,
                              derived_seed(seed, name, prefix), e.temperature, e.top_k or None)
        out[prefix] = (f"- **{name}, greedy** (the book's prediction): {greedy}\n"
                       f"- **{name}, sampled**: {drawn}\n")
    return out


def samples_page(e: EvaluateParams, seed: int, samples: Mapping[str, Mapping[str, str]]) -> str:
    """The models' samples side by side, prefix by prefix."""
    page = ["# Samples\n", f"Seed {seed} (one seed per model and prefix drawn from it); sampled "
            f"with temperature {e.temperature}" + (f", top-k {e.top_k}" if e.top_k else "")
            + f"; {e.tokens} tokens each.\n"]
    for prefix in e.prefixes:
        page.append(f"\n## {prefix!r}\n")
        page.extend(by_prefix[prefix] for by_prefix in samples.values())
    return "".join(page)


if __name__ == "__main__":
    run_stage("evaluate", evaluate_stage)
