"""Quality over time of a training that already ran: the train stage's run in an MLflow store
(e.g. a clone's `mlflow.db` after `rnnlm exp run NAME`), read as `bench/bench_quality.py` reads
its own runs, and added to a results file under NAME for `bench/plot_quality.py`.

Seconds count from the train stage's run's start, or from `--started` (Unix time, e.g. `date
+%s.%N` taken just before `rnnlm exp run`, to count the whole run).

    python bench/quality_of_run.py STORE.db NAME --out RESULTS.json [--started UNIX_SECONDS]
        [--overrides KEY=VALUE ...] [--thresholds PPL ...] [--note TEXT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_quality import THRESHOLDS, read_history


def entry(store: Path, started: float | None, thresholds: tuple[float, ...]) -> dict:
    """The newest train-stage run's entry: `finished` says whether it ended on its own (a
    training stopped by hand is marked FAILED or KILLED), `test_ppl` is there once evaluated."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store.resolve()}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string="tags.dvc_stage = 'train'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SystemExit(f"{store} holds no run of the train stage (tag dvc_stage = 'train')")
    [run] = runs
    since = run.info.start_time / 1000 if started is None else started
    result = {"finished": run.info.status == "FINISHED",
              **read_history(client, run.info.run_id, since, thresholds)}
    if "test_ppl" in run.data.metrics:
        result["test_ppl"] = run.data.metrics["test_ppl"]
    return result


def main() -> None:
    from _worker import save

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path, help="the MLflow store's SQLite file")
    parser.add_argument("name", help="the entry's name in the results file")
    parser.add_argument("--out", type=Path, required=True,
                        help="the results file: the entry is added, or replaces its namesake")
    parser.add_argument("--started", type=float,
                        help="Unix time to count seconds from (default: the run's start)")
    parser.add_argument("--overrides", nargs="*", default=[], metavar="KEY=VALUE",
                        help="the values the run changed, as recorded beside bench_quality's")
    parser.add_argument("--thresholds", type=float, nargs="+", default=THRESHOLDS,
                        help="val perplexities to time (default: %(default)s)")
    parser.add_argument("--note", help="a sentence on how the run was made")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result = {"overrides": args.overrides,
              **entry(args.store, args.started, tuple(args.thresholds))}
    if args.note:
        result["note"] = args.note
    results[args.name] = result
    save(args.out, results)
    print(f"{args.name}: {result['epochs_done']} epochs, best val_ppl "
          f"{result['best_val_ppl']:.4f}, {'finished' if result['finished'] else 'stopped'}")


if __name__ == "__main__":
    main()
