"""Stage train: fit the configured RNN (or MLP) with Lightning, log the run to MLflow, write the
checkpoints, per-epoch metrics, curves and a summary.

Rank 0 (the only process without data parallelism) does everything; the other ranks of a
data-parallel training, started by Lightning, torchrun or SLURM running this same stage, only
train: the checkpoints, reports and the one MLflow run are rank 0's.
"""

import warnings
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from rnnlm import tracking
from rnnlm.errors import RnnlmError
from rnnlm.figures import training_curves
from rnnlm.io import atomic_path, write_json
from rnnlm.layout import (
    CHECKPOINTS,
    RNN_DIR,
    TRAIN_CURVES,
    TRAIN_METRICS,
    TRAIN_REPORT,
    VOCAB,
    ids_path,
)
from rnnlm.neural.batches import check_shardable
from rnnlm.neural.checkpoints import PreviousModel
from rnnlm.neural.data import TokenDataModule
from rnnlm.neural.footprint import check_fits
from rnnlm.neural.run_logger import recorded_training, training_logger
from rnnlm.neural.task import LanguageModelTask, TrainingDiverged
from rnnlm.neural.trainer import (
    BEST,
    LAST,
    LAST_CHECKPOINT_TAG,
    PREVIOUS_CHECKPOINT_TAG,
    RunMetadata,
    build_trainer,
    checkpoint_path,
    read_checkpoint,
    resume_point,
    weights_checksum,
)
from rnnlm.serving.logged_model import log_language_model
from rnnlm.store.workspace import RUN_KEY, RunRecord
from rnnlm.text.splits import SPLITS
from rnnlm.text.vocab import Vocab

from ._stage import dataset_name, load_ids, run_stage
from ._text import text_settings
from .settings import Params

# The module's own hyperparameters, as LanguageModelTask takes them from `train`.
OPTIMIZATION = ("optimizer", "lr", "momentum", "weight_decay", "schedule")


def run_params(params: Params, vocab_size: int, parameters: int) -> dict[str, object]:
    """Flat MLflow params; the names shared with the n-gram runs mean the same there."""
    m, t, p = params.model, params.train, params.partition
    out: dict[str, object] = {
        "model_kind": m.kind, "hidden": m.hidden, "num_layers": m.num_layers,
        "dropout": m.dropout, "embed": m.embed, "tie_weights": m.tie_weights,
        **t.model_dump(include={*OPTIMIZATION, "clip", "epochs", "patience", "precision"}),
        "scheme": p.scheme, "batch_size": p.batch_size,
        "num_steps": p.num_steps, "seed": params.seed, "vocab_size": vocab_size,
        "tokenize_level": params.tokenize.level, "vocab_min_freq": params.vocab.min_freq,
        "parameters": parameters,
    }
    if m.kind == "mlp":
        out["context"] = m.context
    if t.optimizer != "sgd":
        del out["momentum"]
    return out


def run_metadata(params: Params, checksum: str) -> RunMetadata:
    """What a resumed training must share with the one it continues, beyond the module's own
    hyperparameters."""
    options = params.train.trainer_options().resumed_must_match()
    return RunMetadata(checksum, {
        **{f"train.{k}": v for k, v in options.items()},
        **{f"partition.{k}": v for k, v in params.partition.model_dump().items()},
        "seed": params.seed,
    })


def train_stage(params: Params) -> None:
    m, t, p = params.model, params.train, params.partition
    vocab = Vocab.load(VOCAB)
    ids = load_ids(SPLITS)
    text = text_settings(params)  # read now: a missing tokenizer.json stops no training midway
    metadata = run_metadata(params, tracking.data_checksum(ids_path(name) for name in SPLITS))
    check_fits(len(vocab), m.model_dump(), t.optimizer, t.momentum)  # before allocating it
    pl.seed_everything(params.seed, workers=True, verbose=False)
    task = LanguageModelTask(len(vocab), m.model_dump(), carry_state=p.scheme == "sequential",
                             **t.model_dump(include=set(OPTIMIZATION)))
    last = checkpoint_path(CHECKPOINTS, LAST)
    # The last training's model stays aside until this one has succeeded; see PreviousModel.
    previous = PreviousModel(RNN_DIR, marker=last)
    if getattr(rank_zero_only, "rank", 0) == 0:
        previous.recover()  # a training killed before its first checkpoint: before any resume
    logger, run_id = run_logger(params, task, metadata, last)
    # A configuration Lightning refuses stops the stage here, before any run is opened.
    trainer = build_trainer(t.trainer_options(), CHECKPOINTS, logger, callbacks=[metadata])
    check_shardable(p.batch_size, trainer.world_size)
    data = TokenDataModule(ids["train"], ids["val"], p.batch_size, p.num_steps, p.scheme,
                           params.seed)
    if t.resume:
        warnings.filterwarnings("ignore", message="Checkpoint directory .* is not empty")
    if logger is None or trainer.global_rank > 0:
        trainer.fit(task, datamodule=data, ckpt_path=last if t.resume else None)
        return
    tracking.connect()  # a store that cannot be used stops the stage before any work
    # A new training starts from an empty folder (stale checkpoints would mislead); a resumed
    # one continues in it, with a copy aside in case it diverges.
    previous.set_aside(copy=t.resume)
    parameters = sum(x.numel() for x in task.parameters())
    # A diverged training is refused inside `fit`, before any output is written or any MLflow
    # Model logged; its run is closed FAILED by Lightning and recorded_training.
    with recorded_training(logger, run_params(params, len(vocab), parameters), run_id) as opened:
        if run_id is None:
            tracking.log_dataset(opened, ids["train"], *dataset_name(params),
                                 metadata.data_checksum)
        try:
            trainer.fit(task, datamodule=data, ckpt_path=last if t.resume else None)
            best = min(task.history, key=lambda row: row["val_ppl"])
            name, source = dataset_name(params)
            # What the run holds, kept in the report too: the store sync records the run from
            # it when the store lacks it (a fresh clone, a pull, a new tracking server).
            record = RunRecord(
                name=f"{m.kind}-{m.hidden}", kind=m.kind, description=model_description(params),
                params=run_params(params, len(vocab), parameters),
                data_checksum=metadata.data_checksum,
                model_checksum=weights_checksum(
                    read_checkpoint(checkpoint_path(CHECKPOINTS, BEST))["state_dict"]),
                dataset={"name": name, "source": source},
                # The checkpoint evaluate uses; `val_ppl` itself holds the last epoch's value.
                metrics={"best_val_ppl": best["val_ppl"]})
            # Timings and the run's id stay in MLflow: the same training writes the same files.
            write_outputs(params, vocab, text, task.history, {
                "model_kind": m.kind, "best_val_ppl": best["val_ppl"],
                "best_epoch": best["epoch"], "epochs": len(task.history),
                "parameters": parameters, RUN_KEY: record.to_json(),
            })
            log_artifacts(logger, record)
        except TrainingDiverged:
            previous.reject()  # the previous model comes back whole, this one's checkpoints go
            raise
        except BaseException:
            # Before a checkpoint: the previous model is whole again; after one: kept to resume.
            previous.restore()
            raise
    previous.keep_new()


def run_logger(params: Params, task: LanguageModelTask, metadata: RunMetadata, last: Path
               ) -> tuple[MLFlowLogger | None, str | None]:
    """The training's MLflow logger, and the run it continues when resuming (after checking that
    `last` continues this very training). Only the first process of a data-parallel training
    touches the store: opening it would migrate a SQLite store from every process at once."""
    m = params.model
    weights = resume_point(last, dict(task.hparams), metadata) if params.train.resume else None
    if getattr(rank_zero_only, "rank", 0) != 0:
        return None, None
    run_id = resumed_run(last, weights) if weights else None
    return training_logger(m.kind, f"{m.kind}-{m.hidden}", metadata.data_checksum, run_id), run_id


def resumed_run(last: Path, weights: str) -> str:
    """The MLflow run that wrote `last` (whose weights have the checksum `weights`): tagged with
    it as its last checkpoint, or as the one before if it stopped between two saves."""
    run_id = (tracking.find_run(LAST_CHECKPOINT_TAG, weights)
              or tracking.find_run(PREVIOUS_CHECKPOINT_TAG, weights))
    if run_id is None:
        raise RnnlmError(f"cannot resume from {last}: no run in the MLflow store "
                         f"{tracking.tracking_uri()!r} wrote it (tag {LAST_CHECKPOINT_TAG}). Point "
                         "MLFLOW_TRACKING_URI at the store it was trained with, or set "
                         "train.resume: false to start afresh")
    return run_id


def write_outputs(params: Params, vocab: Vocab, text: dict[str, object],
                  history: list[dict[str, float]], summary: dict[str, object]) -> None:
    with atomic_path(TRAIN_METRICS) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    training_curves(TRAIN_CURVES, history, title=f"{params.model.kind}, hidden "
                    f"{params.model.hidden}: perplexity per epoch")
    vocab.save(RNN_DIR / "vocab.parquet")
    write_json(RNN_DIR / "model.json", {
        "model": params.model.model_dump(),
        "vocab_size": len(vocab),
        "checkpoint": checkpoint_path(CHECKPOINTS, BEST).relative_to(RNN_DIR).as_posix(),
        "text": text,
    })
    write_json(TRAIN_REPORT, summary)


def model_description(params: Params) -> str:
    m = params.model
    return (f"{m.kind}, hidden {m.hidden}, {m.num_layers} layer(s), {params.tokenize.level} "
            "level")


def log_artifacts(logger: MLFlowLogger, record: RunRecord) -> None:
    run_id, client = str(logger.run_id), logger.experiment
    for path in (TRAIN_REPORT, TRAIN_METRICS, TRAIN_CURVES):
        client.log_artifact(run_id, str(path))
    # The trained model as an MLflow Model (its artifact `model` laid out as models/rnn, which
    # rnnlm.neural.inference.load_trained also opens): the best checkpoint, not last.ckpt.
    log_language_model(run_id, {
        path.relative_to(RNN_DIR).as_posix(): path
        for path in (RNN_DIR / "model.json", RNN_DIR / "vocab.parquet",
                     checkpoint_path(CHECKPOINTS, BEST))}, record.description)
    for key, value in record.metrics.items():
        client.log_metric(run_id, key, value)
    client.set_tag(run_id, tracking.MODEL_TAG, record.model_checksum)


if __name__ == "__main__":
    run_stage("train", train_stage, again="set train.resume: true and run `dvc repro train` to "
              "continue from the last checkpoint (models/rnn/checkpoints/last.ckpt), in the same "
              "MLflow run")
