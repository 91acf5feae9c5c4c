"""Stage train: fit the configured RNN (or MLP) with Lightning, log the run to MLflow, write the
checkpoints, per-epoch metrics, curves and a summary."""

import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning.accelerators import CPUAccelerator

from rnnlm import tracking
from rnnlm.batches import check_shardable
from rnnlm.datamodule import TokenDataModule
from rnnlm.errors import RnnlmError
from rnnlm.figures import training_curves
from rnnlm.io import atomic_path, write_json
from rnnlm.lm_module import LanguageModelTask
from rnnlm.tokens import SPLITS
from rnnlm.training import (
    BEST,
    LAST,
    build_trainer,
    checkpoint_path,
    recorded_training,
    resume_point,
)
from rnnlm.vocab import Vocab

from ._stage import run_stage
from .paths import CHECKPOINTS, RNN_DIR, TRAIN_CURVES, TRAIN_METRICS, TRAIN_REPORT, VOCAB, ids_path
from .settings import Params


def run_params(params: Params, vocab_size: int, parameters: int) -> dict[str, object]:
    """Flat MLflow params; the names shared with the n-gram runs mean the same there."""
    m, t, p = params.model, params.train, params.partition
    out: dict[str, object] = {
        "model_kind": m.kind, "hidden": m.hidden, "num_layers": m.num_layers,
        "dropout": m.dropout, "embed": m.embed, "tie_weights": m.tie_weights,
        "optimizer": t.optimizer, "lr": t.lr, "weight_decay": t.weight_decay,
        "schedule": t.schedule, "clip": t.clip, "epochs": t.epochs, "patience": t.patience,
        "precision": t.precision, "scheme": p.scheme, "batch_size": p.batch_size,
        "num_steps": p.num_steps, "seed": params.seed, "vocab_size": vocab_size,
        "tokenize_level": params.tokenize.level, "vocab_min_freq": params.vocab.min_freq,
        "parameters": parameters,
    }
    if m.kind == "mlp":
        out["context"] = m.context
    if t.optimizer == "sgd":
        out["momentum"] = t.momentum
    return out


def make_trainer(params: Params) -> pl.Trainer:
    t = params.train
    try:
        trainer = build_trainer(epochs=t.epochs, clip=t.clip, patience=t.patience,
                                checkpoint_dir=CHECKPOINTS, logger=None,
                                accelerator=t.accelerator, devices=t.devices,
                                precision=t.precision, strategy=t.strategy,
                                num_nodes=t.num_nodes)
    except (MisconfigurationException, ValueError, RuntimeError) as exc:
        raise RnnlmError(f"Lightning refuses train.accelerator={t.accelerator!r}, "
                         f"devices={t.devices!r}, precision={t.precision!r}, "
                         f"strategy={t.strategy!r}, num_nodes={t.num_nodes}: {exc}") from None
    if isinstance(trainer.accelerator, CPUAccelerator) and t.precision != "32":
        raise RnnlmError(f"train.precision {t.precision!r} needs a GPU (on this CPU it is "
                         "emulated or unsupported, e.g. LSTM in bfloat16): use \"32\"")
    check_shardable(params.partition.batch_size, trainer.world_size)
    return trainer


def train_stage(params: Params) -> None:
    """Rank 0 (the only process without data parallelism) does everything; the other ranks of a
    data-parallel training, started by Lightning, torchrun or SLURM running this same stage,
    only train: the checkpoints, reports and the one MLflow run are rank 0's."""
    m, t, p = params.model, params.train, params.partition
    trainer = make_trainer(params)  # a bad accelerator/devices/precision stops us before any run
    if trainer.global_rank == 0:
        tracking.connect()  # a store that cannot be used stops the stage before any work
    vocab = Vocab.load(VOCAB)
    ids = {name: np.load(ids_path(name), mmap_mode="r") for name in SPLITS}
    checksum = tracking.data_checksum(ids_path(name) for name in SPLITS)

    pl.seed_everything(params.seed, workers=True, verbose=False)
    task = LanguageModelTask(
        len(vocab), m.model_dump(), optimizer=t.optimizer, lr=t.lr, momentum=t.momentum,
        weight_decay=t.weight_decay, schedule=t.schedule, carry_state=p.scheme == "sequential")
    task.data_checksum = checksum
    task.run_settings = {
        **{f"train.{k}": v for k, v in t.model_dump().items()
           # The module's own hyperparameters (optimizer, lr, ...) are compared on their own.
           if k in ("epochs", "clip", "patience", "precision", "strategy", "num_nodes")},
        **{f"partition.{k}": v for k, v in p.model_dump().items()},
        "seed": params.seed,
    }
    last = checkpoint_path(CHECKPOINTS, LAST)
    run_id = None
    if t.resume:
        run_id = resume_point(last, dict(task.hparams), checksum, task.run_settings)
        warnings.filterwarnings("ignore", message="Checkpoint directory .* is not empty")
    elif trainer.global_rank == 0:
        shutil.rmtree(RNN_DIR, ignore_errors=True)  # stale checkpoints would mislead a reader
    data = TokenDataModule(ids["train"], ids["val"], p.batch_size, p.num_steps, p.scheme,
                           params.seed)
    if trainer.global_rank > 0:
        trainer.fit(task, datamodule=data, ckpt_path=last if t.resume else None)
        return
    parameters = sum(x.numel() for x in task.parameters())

    started = time.perf_counter()
    with recorded_training(m.kind, f"{m.kind}-{m.hidden}",
                           run_params(params, len(vocab), parameters), checksum,
                           run_id) as logger:
        task.mlflow_run_id = logger.run_id
        trainer.logger = logger
        trainer.fit(task, datamodule=data, ckpt_path=last if t.resume else None)
        history = task.history
        best = min(history, key=lambda row: row["val_ppl"])
        write_outputs(params, vocab, history, {
            "model_kind": m.kind,
            "best_val_ppl": best["val_ppl"],
            "best_epoch": best["epoch"],
            "epochs": len(history),
            "wall_seconds": time.perf_counter() - started,
            "tokens_per_s": float(np.mean([row["tokens_per_s"] for row in history])),
            "parameters": parameters,
            "mlflow_run_id": logger.run_id,
        })
        for path in (TRAIN_REPORT, TRAIN_METRICS, TRAIN_CURVES):
            logger.experiment.log_artifact(logger.run_id, str(path))
        # The trained model as models/rnn lays it out, so a teammate can download the `model`
        # folder from the tracking server and open it with rnnlm.inference.load_trained.
        for path in (RNN_DIR / "model.json", RNN_DIR / "vocab.parquet",
                     checkpoint_path(CHECKPOINTS, BEST)):
            folder = Path("model", path.parent.relative_to(RNN_DIR)).as_posix()
            logger.experiment.log_artifact(logger.run_id, str(path), artifact_path=folder)
        # The checkpoint evaluate uses; `val_ppl` itself holds the last epoch's value.
        logger.experiment.log_metric(logger.run_id, "best_val_ppl", best["val_ppl"])


def write_outputs(params: Params, vocab: Vocab, history: list[dict[str, float]],
                  summary: dict[str, object]) -> None:
    with atomic_path(TRAIN_METRICS) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    training_curves(TRAIN_CURVES, history, title=f"{params.model.kind}, hidden "
                    f"{params.model.hidden}: perplexity per epoch")
    vocab.save(RNN_DIR / "vocab.parquet")
    write_json(RNN_DIR / "model.json", {
        "model": params.model.model_dump(),
        "vocab_size": len(vocab),
        "checkpoint": checkpoint_path(CHECKPOINTS, BEST).relative_to(RNN_DIR).as_posix(),
        "text": {"clean": params.clean.mode, "level": params.tokenize.level,
                 "reverse": params.tokenize.reverse},
    })
    write_json(TRAIN_REPORT, summary)


if __name__ == "__main__":
    run_stage("train", train_stage)
