"""Stage ngram: fit the Markov model on the train ids, score val and test, record an MLflow run."""

import mlflow
import numpy as np

from rnnlm import tracking
from rnnlm.errors import RnnlmError
from rnnlm.io import write_json
from rnnlm.ngram import NgramModel, UniformModel, build
from rnnlm.ngram_counts import NgramCounts
from rnnlm.ngram_io import save_ngram
from rnnlm.perplexity import from_probs
from rnnlm.tokens import SPLITS
from rnnlm.vocab import Vocab

from ._stage import run_stage
from .paths import NGRAM_DIR, NGRAM_REPORT, VOCAB, ids_path
from .settings import Params

SCORED = ("val", "test")


def score(model: NgramModel | UniformModel, ids: dict[str, np.ndarray]) -> dict[str, float]:
    """Perplexity on each scored split under the project's protocol (see the README)."""
    out = {}
    for split in SCORED:
        probs = model.token_probs(ids[split])
        if not probs.all():
            raise RnnlmError(
                f"the {getattr(model, 'method', 'uniform')} model gives probability 0 to "
                f"{int((probs == 0).sum())} tokens of the {split} split, so its perplexity is "
                f"infinite: smooth every order (ngram.eps > 0)")
        out[f"{split}_ppl"] = from_probs(probs)
    return out


def ngram_stage(params: Params) -> None:
    p = params.ngram
    tracking.connect()  # a store that cannot be used stops the stage before any work
    vocab = Vocab.load(VOCAB)
    ids = {name: np.load(ids_path(name), mmap_mode="r") for name in SPLITS}
    counts = NgramCounts.fit(ids["train"], p.order, len(vocab))
    model = build(counts, p.method, eps=p.eps_per_order, k=p.k)
    unigram = model.truncated(1)
    metrics = score(model, ids)
    references = {"unigram": score(unigram, ids), "uniform": score(UniformModel(len(vocab)), ids)}

    save_ngram(NGRAM_DIR, model, vocab, text={
        "clean": params.clean.mode, "level": params.tokenize.level,
        "reverse": params.tokenize.reverse,
    })
    report = {
        "method": p.method, "order": p.order, "vocab_size": len(vocab),
        **metrics, **references, **model.settings,
        "train_tokens": len(ids["train"]),
        "predicted_tokens": {split: max(len(ids[split]) - 1, 0) for split in SCORED},
    }

    run_params: dict[str, object] = {
        "method": p.method, "order": p.order, "vocab_size": len(vocab),
        "tokenize_level": params.tokenize.level, "vocab_min_freq": params.vocab.min_freq,
        "train_tokens": len(ids["train"]),
    }
    if p.method == "additive":
        run_params["eps"] = p.eps_per_order
    elif p.method == "laplace":
        run_params["k"] = p.k
    else:
        for k, discounts in enumerate(model.settings["discounts"], start=1):  # type: ignore[arg-type]
            run_params[f"discounts_order{k}"] = discounts
    checksum = tracking.data_checksum(ids_path(name) for name in SPLITS)
    with tracking.recorded_run("ngram", f"ngram-{p.method}-{p.order}", run_params,
                               checksum) as run:
        # The run id lets the evaluate stage add its figures and samples to this run.
        write_json(NGRAM_REPORT, {**report, "mlflow_run_id": run.info.run_id})
        mlflow.log_metrics({
            **metrics,
            **{f"{name}_{key}": value for name, scores in references.items()
               for key, value in scores.items()},
        })
        mlflow.log_artifact(str(NGRAM_REPORT))


if __name__ == "__main__":
    run_stage("ngram", ngram_stage)
