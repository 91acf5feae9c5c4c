"""Stage train: fit the configured RNN (or MLP) with Lightning, log the run to MLflow, write the
checkpoints, per-epoch metrics, curves and a summary.

Rank 0 (the only process without data parallelism) does everything; the other ranks of a
data-parallel training, started by Lightning, torchrun or SLURM running this same stage, only
train: the checkpoints, reports and the one MLflow run are rank 0's.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from rnnlm.checksums import files_checksum, weights_checksum
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
from rnnlm.neural.checkpoints import BEST, LAST, PreviousModel, checkpoint_path, read_checkpoint
from rnnlm.neural.data import TokenDataModule
from rnnlm.neural.footprint import check_fits
from rnnlm.neural.resume import (
    RunMetadata,
    resume_point,
    resumed_run,
)
from rnnlm.neural.task import LanguageModelTask, TrainingDiverged
from rnnlm.neural.trainer import build_trainer
from rnnlm.serving.logged_model import log_language_model
from rnnlm.settings import Params
from rnnlm.text.splits import SPLITS
from rnnlm.text.vocab import Vocab
from rnnlm.tracking import connection, records
from rnnlm.tracking.run_logger import recorded_training, training_logger
from rnnlm.tracking.workspace import RUN_KEY, RunRecord

from ._stage import dataset_name, load_ids, run_stage
from ._text import text_settings

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


@dataclass(frozen=True)
class Training:
    """What a training is made of, put together before any run is opened."""

    params: Params
    vocab: Vocab
    ids: dict[str, np.ndarray]
    text: dict[str, object]  # how its text was cut, for model.json
    metadata: RunMetadata
    task: LanguageModelTask
    last: Path  # its last checkpoint, the one a resume continues

    @property
    def parameters(self) -> int:
        return sum(x.numel() for x in self.task.parameters())


def prepared(params: Params) -> Training:
    m, t = params.model, params.train
    vocab = Vocab.load(VOCAB)
    ids = load_ids(SPLITS)
    text = text_settings(params)  # read now: a missing tokenizer.json stops no training midway
    metadata = run_metadata(params, files_checksum(ids_path(name) for name in SPLITS))
    check_fits(len(vocab), m.model_dump(), t.optimizer, t.momentum)  # before allocating it
    if t.resume:  # it continues in the folder of its checkpoints
        warnings.filterwarnings("ignore", message="Checkpoint directory .* is not empty")
    pl.seed_everything(params.seed, workers=True, verbose=False)
    task = LanguageModelTask(len(vocab), m.model_dump(),
                             carry_state=params.partition.scheme == "sequential",
                             **t.model_dump(include=set(OPTIMIZATION)))
    return Training(params, vocab, ids, text, metadata, task, checkpoint_path(CHECKPOINTS, LAST))


def train_stage(params: Params) -> None:
    t, p = params.train, params.partition
    training = prepared(params)
    # The last training's model stays aside until this one has succeeded; see PreviousModel.
    previous = PreviousModel(RNN_DIR, marker=training.last)
    if getattr(rank_zero_only, "rank", 0) == 0:
        previous.recover()  # a training killed before its first checkpoint: before any resume
    logger, run_id = run_logger(params, training.task, training.metadata, training.last)
    # A configuration Lightning refuses stops the stage here, before any run is opened.
    trainer = build_trainer(t.trainer_options(), CHECKPOINTS, logger,
                            callbacks=[training.metadata])
    check_shardable(p.batch_size, trainer.world_size)
    data = TokenDataModule(training.ids["train"], training.ids["val"], p.batch_size,
                           p.num_steps, p.scheme, params.seed)
    resumed_from = training.last if t.resume else None
    if logger is None or trainer.global_rank > 0:
        trainer.fit(training.task, datamodule=data, ckpt_path=resumed_from)
        return
    connection.connect()  # a store that cannot be used stops the stage before any work
    flat = run_params(params, len(training.vocab), training.parameters)
    # Whatever fails in here (the server refusing the run, the training, its outputs), no model
    # is left aside; a diverged training's checkpoints go and the previous model comes back.
    with previous.replacing(TrainingDiverged), recorded_training(logger, flat, run_id) as opened:
        if run_id is None:
            records.log_dataset(opened, training.ids["train"], *dataset_name(params),
                                training.metadata.data_checksum)
        # Only once the run is open: a new training starts from an empty folder (stale
        # checkpoints would mislead); a resumed one continues in it, with a copy aside.
        previous.set_aside(copy=t.resume)
        # A diverged training is refused inside `fit`, before any output is written or any
        # MLflow Model logged; its run is closed FAILED by Lightning and recorded_training.
        trainer.fit(training.task, datamodule=data, ckpt_path=resumed_from)
        finish(training, logger)


def finish(training: Training, logger: MLFlowLogger) -> None:
    """The trained model's outputs, its run's record (kept in the report too: the store sync
    records the run from it when the store lacks it: a fresh clone, a pull, a new tracking
    server) and its artifacts."""
    params, m = training.params, training.params.model
    best = min(training.task.history, key=lambda row: row["val_ppl"])
    name, source = dataset_name(params)
    record = RunRecord(
        name=f"{m.kind}-{m.hidden}", kind=m.kind, description=model_description(params),
        params=run_params(params, len(training.vocab), training.parameters),
        data_checksum=training.metadata.data_checksum,
        model_checksum=weights_checksum(
            read_checkpoint(checkpoint_path(CHECKPOINTS, BEST))["state_dict"]),
        dataset={"name": name, "source": source},
        # The checkpoint evaluate uses; `val_ppl` itself holds the last epoch's value.
        metrics={"best_val_ppl": best["val_ppl"]})
    # Timings and the run's id stay in MLflow: the same training writes the same files.
    write_outputs(params, training.vocab, training.text, training.task.history, {
        "model_kind": m.kind, "best_val_ppl": best["val_ppl"],
        "best_epoch": best["epoch"], "epochs": len(training.task.history),
        "parameters": training.parameters, RUN_KEY: record.to_json(),
    })
    log_artifacts(logger, record)


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
    client.set_tag(run_id, records.MODEL_TAG, record.model_checksum)


if __name__ == "__main__":
    run_stage("train", train_stage, again="set train.resume: true and run `dvc repro train` to "
              "continue from the last checkpoint (models/rnn/checkpoints/last.ckpt), in the same "
              "MLflow run")
