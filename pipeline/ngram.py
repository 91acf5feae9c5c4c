"""Stage ngram: fit the Markov model on the train ids, report its val perplexity (and the unigram
and uniform references'), record an MLflow run. The test split is scored by the evaluate stage
alone, with every other model."""

from dataclasses import dataclass

import mlflow

from rnnlm.checksums import directory_checksum, files_checksum
from rnnlm.io import write_json
from rnnlm.layout import NGRAM_DIR, NGRAM_REPORT, VOCAB, ids_path
from rnnlm.ngram.counts import NgramCounts
from rnnlm.ngram.model import NgramModel, UniformModel
from rnnlm.ngram.store import save_ngram
from rnnlm.scoring import perplexities
from rnnlm.serving.logged_model import log_language_model
from rnnlm.settings import Params
from rnnlm.text.splits import SPLITS
from rnnlm.text.vocab import Vocab
from rnnlm.tracking import connection, records
from rnnlm.tracking.workspace import RUN_KEY, RunRecord

from ._phases import phase
from ._stage import dataset_name, load_ids, run_stage
from ._text import text_settings


def run_params(params: Params, vocab_size: int, train_tokens: int, model: NgramModel
               ) -> dict[str, object]:
    """Flat MLflow params; the names shared with the network runs mean the same there."""
    p = params.ngram
    return {"method": p.method, "order": p.order, "vocab_size": vocab_size,
            "tokenize_level": params.tokenize.level, "vocab_min_freq": params.vocab.min_freq,
            "train_tokens": train_tokens, **model.run_params()}


@dataclass(frozen=True)
class Fitted:
    """What the report and the run keep of a fitted model once it is written and let go."""

    metrics: dict[str, float]  # val_ppl
    references: dict[str, dict[str, float]]  # the unigram's and the uniform's val_ppl
    settings: dict[str, object]
    run_params: dict[str, object]


def fit_and_save(params: Params, vocab_size: int) -> Fitted:
    """Count the train ids, estimate the model, score the val ids and write the model directory,
    phase by phase. Nothing of the model outlives this call: logging it runs on its files."""
    p = params.ngram
    ids = load_ids(("train", "val"))
    train_tokens = len(ids["train"])
    with phase("count"):
        # Popped: the train ids' pages leave the process's memory once they are counted.
        counts = NgramCounts.fit(ids.pop("train"), p.order, vocab_size)
    with phase("estimate"):
        model = p.smoothing().fit(counts)
    with phase("score"):
        val = {"val": ids["val"]}
        metrics = perplexities(model, val, p.method)
        references = {"unigram": perplexities(model.truncated(1), val, "unigram"),
                      "uniform": perplexities(UniformModel(vocab_size), val, "uniform")}
    with phase("save"):
        save_ngram(NGRAM_DIR, model, VOCAB, text=text_settings(params))
    return Fitted(metrics, references, model.settings,
                  run_params(params, vocab_size, train_tokens, model))


def ngram_stage(params: Params) -> None:
    p = params.ngram
    connection.connect()  # a store that cannot be used stops the stage before any work
    vocab_size = Vocab.size_of(VOCAB)
    fitted = fit_and_save(params, vocab_size)
    tokens = {split: len(ids) for split, ids in load_ids(SPLITS).items()}
    report = {
        "method": p.method, "order": p.order, "vocab_size": vocab_size,
        **fitted.metrics, **fitted.references, **fitted.settings,
        "train_tokens": tokens["train"], "predicted_tokens": {"val": max(tokens["val"] - 1, 0)},
    }
    name, source = dataset_name(params)
    # What the run holds, kept in the report too: the store sync records the run from it when
    # the store lacks it (a fresh clone, a pull, a new tracking server).
    record = RunRecord(
        name=f"ngram-{p.method}-{p.order}", kind="ngram",
        description=f"{p.method}, order {p.order}, {params.tokenize.level} level",
        params=fitted.run_params,
        data_checksum=files_checksum(ids_path(s) for s in SPLITS),
        model_checksum=directory_checksum(NGRAM_DIR), dataset={"name": name, "source": source},
        # One val figure, measured once: it is also the kept model's, as for a network.
        metrics={**fitted.metrics, "best_val_ppl": fitted.metrics["val_ppl"],
                 **{f"{ref}_{key}": value for ref, scores in fitted.references.items()
                    for key, value in scores.items()}})
    with phase("log"), records.recorded_run("ngram", record.name, record.params,
                                            record.data_checksum) as run:
        # MLflow reads every page of the ids it is given: mapped for this call alone, they are
        # let go before the model is loaded to check its input example (0.5 GB at 1 GB).
        records.log_dataset(run.info.run_id, load_ids(("train",))["train"], name, source,
                            record.data_checksum)
        # The evaluate stage finds this run by the tag, to add its test figures and samples.
        mlflow.set_tag(records.MODEL_TAG, record.model_checksum)
        write_json(NGRAM_REPORT, {**report, RUN_KEY: record.to_json()})
        mlflow.log_metrics(dict(record.metrics))
        mlflow.log_artifact(str(NGRAM_REPORT))
        log_language_model(run.info.run_id, {path.name: path for path in NGRAM_DIR.iterdir()},
                           record.description)


if __name__ == "__main__":
    run_stage("ngram", ngram_stage)
