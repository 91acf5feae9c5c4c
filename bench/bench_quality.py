"""Benchmark: quality per minute, the wall time a training takes to reach given validation
perplexities on The Time Machine (characters), and the best it reaches within time budgets.

Each configuration is the repository's `params.yaml` with some values changed (as `dvc exp run
-S` would), trained by the real train stage (`python -m pipeline.train`) in a scratch directory
on the workspace's `data/processed` (run `dvc repro partition` first), alone on the machine,
stopped after `--minutes`. The clock starts when the stage's process starts, so imports and
set-up count. The per-epoch `val_ppl` and its time come from the run's MLflow metric history.

    python bench/bench_quality.py [--minutes 10] [--config NAME KEY=VALUE ...]...
        [--workspace DIR] [--thresholds PPL ...] [--out reports/bench/quality.json]

Without `--config`, the default configuration alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from mlflow import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (9.1, 6.24, 5.0, 4.5, 4.0)  # the book's figure, the trigram's, then lower
BUDGETS_MIN = (2, 5, 10)


def with_overrides(params: dict, overrides: list[str]) -> dict:
    for item in overrides:
        key, _, value = item.partition("=")
        section, _, name = key.rpartition(".")
        target = params[section] if section else params
        target[name] = yaml.safe_load(value)
    return params


def train(name: str, overrides: list[str], minutes: float, scratch: Path, workspace: Path,
          thresholds: tuple[float, ...]) -> dict:
    from mlflow import MlflowClient

    where = scratch / name
    (where / "data").mkdir(parents=True)
    shutil.copytree(workspace / "data" / "processed", where / "data" / "processed")
    learned = workspace / "data" / "interim" / "tokens" / "tokenizer.json"  # bpe level
    if learned.is_file():
        (where / learned.relative_to(workspace)).parent.mkdir(parents=True)
        shutil.copy(learned, where / learned.relative_to(workspace))
    params = with_overrides(yaml.safe_load((workspace / "params.yaml").read_text()), overrides)
    (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    store = f"sqlite:///{scratch / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_EXPERIMENT_NAME": "quality",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    started = time.time()
    stage = subprocess.Popen([sys.executable, "-m", "pipeline.train"], cwd=where, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stage.wait(timeout=minutes * 60)
        finished = True
    except subprocess.TimeoutExpired:
        finished = False
    finally:  # also when the benchmark is stopped (exit_on_sigterm)
        if stage.poll() is None:
            stage.terminate()
            stage.wait()
    wall = time.time() - started
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("quality")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id],
                               order_by=["attributes.start_time DESC"], max_results=1)
    return {"overrides": overrides, "finished": finished, "wall_s": wall,
            **read_history(client, run.info.run_id, started, thresholds)}


def read_history(client: MlflowClient, run_id: str, started: float,
                 thresholds: tuple[float, ...]) -> dict:
    """A training run's quality over time from its MLflow metric history: each epoch's val
    perplexity against seconds since `started` (Unix time), and what those reach."""
    def history(key: str) -> list:
        return sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)

    curve = [(m.timestamp / 1000 - started, m.value) for m in history("val_ppl")]
    # The training split's perplexity of each epoch (dropout on, averaged over the epoch): how
    # far it lies below val says whether a configuration needs capacity or regularisation.
    train_curve = [m.value for m in history("train_ppl")]

    def first_below(level: float) -> float | None:
        return next((t for t, v in curve if v <= level), None)

    def best_within(minutes_: float) -> float | None:
        values = [v for t, v in curve if t <= minutes_ * 60]
        return min(values) if values else None

    return {
        "epochs_done": len(curve), "best_val_ppl": min(v for _, v in curve) if curve else None,
        "seconds_to": {str(level): first_below(level) for level in thresholds},
        "best_within_min": {str(b): best_within(b) for b in BUDGETS_MIN},
        "curve": curve, "train_ppl": train_curve,
    }


def main() -> None:
    from _worker import exit_on_sigterm, save

    exit_on_sigterm()

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--config", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"),
                        help="a configuration: its name, then the values it changes")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/quality.json"))
    parser.add_argument("--workspace", type=Path, default=ROOT,
                        help="the project checkout whose params.yaml and data/processed to use "
                             "(default: this one), e.g. one where a configuration's partition "
                             "stage ran")
    parser.add_argument("--thresholds", type=float, nargs="+", default=THRESHOLDS,
                        help="val perplexities to time (default: %(default)s)")
    args = parser.parse_args()
    if not (args.workspace / "data" / "processed" / "ids" / "train.npy").is_file():
        raise SystemExit("data/processed is missing: run `dvc repro partition` first")
    configs = args.config or [["default"]]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        from mlflow import MlflowClient

        # The store's schema is made before any clock starts.
        MlflowClient(f"sqlite:///{Path(tmp) / 'mlflow.db'}").create_experiment(
            "quality", artifact_location=(Path(tmp) / "artifacts").as_uri())
        for name, *overrides in configs:
            results[name] = train(name, overrides, args.minutes, Path(tmp), args.workspace,
                                  tuple(args.thresholds))
            r = results[name]
            reached = ", ".join(f"{k}: {'-' if v is None else f'{v:.0f} s'}"
                                for k, v in r["seconds_to"].items())
            within = ", ".join(f"{k} min: {'-' if v is None else f'{v:.3f}'}"
                               for k, v in r["best_within_min"].items())
            curve = " ".join(f"{t:.0f}s:{v:.3f}" for t, v in r["curve"])
            train_curve = " ".join(f"{v:.3f}" for v in r["train_ppl"])
            print(f"{name} ({' '.join(overrides) or 'params.yaml'}): {r['epochs_done']} epochs "
                  f"in {r['wall_s']:.0f} s, best val_ppl {r['best_val_ppl']:.4f}\n"
                  f"  curve          {curve}\n  train ppl      {train_curve}\n"
                  f"  time to reach  {reached}\n  best within    {within}", flush=True)
            save(args.out, results)  # after each configuration: a stopped search keeps its runs


if __name__ == "__main__":
    main()
