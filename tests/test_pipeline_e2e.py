"""The real `dvc repro` in a temporary git repository holding the project's pipeline."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers.dvc_project import SHARED_CORPUS, STAGES, run, set_param, stages_run
from helpers.metrics import model_metrics

# Each test runs the real `dvc` (repro, exp, push, pull) on the whole pipeline: minutes.
pytestmark = pytest.mark.slow


def test_dvc_repro_runs_the_data_stages_then_nothing(repo) -> None:
    repo, env = repo
    first = run(["dvc", "repro"], repo, env)
    assert stages_run(first.stdout) == list(STAGES)

    vocab = pd.read_parquet(repo / "data/processed/vocab.parquet")
    assert vocab["token"].iloc[0] == "<unk>"
    assert vocab["index"].tolist() == list(range(len(vocab)))
    if SHARED_CORPUS.is_file():
        assert len(vocab) == 28  # 26 letters, space and <unk>, as in the book

    corpus = json.loads((repo / "reports/corpus.json").read_text())
    clean = (repo / "data/interim/clean.txt").read_text()
    ids = {s: np.load(repo / f"data/processed/ids/{s}.npy", mmap_mode="r")
           for s in ("train", "val", "test")}
    assert all(a.dtype == np.int32 for a in ids.values())
    assert sum(len(a) for a in ids.values()) == len(clean)  # char level: one id per character
    assert len(ids["train"]) == int(0.9 * len(clean))
    assert corpus["splits"]["train"]["tokens"] == len(ids["train"])
    assert corpus["splits"]["train"]["oov_rate"] == 0.0
    decoded = "".join(vocab["token"].to_numpy()[ids["val"]])
    b1, b2 = int(0.9 * len(clean)), int(0.95 * len(clean))
    assert decoded == clean[b1:b2]

    partition = json.loads((repo / "reports/partition.json").read_text())
    assert partition["splits"]["train"]["sequential"]["minibatches_per_epoch"]["max"] == (
        (len(ids["train"]) - 1) // 32 // 35)
    assert (repo / "reports/figures/zipf.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((repo / "data/raw/manifest.json").read_text())
    assert manifest["from_cache"] is True
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert manifest["source"] == params["data"]["urls"][0]  # no machine-specific cache path

    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo, env).stdout)["data"]
    [curves] = plots["reports/train_metrics.csv"]
    assert curves["type"] == "vega" and curves["content"]["encoding"]["x"]["field"] == "epoch"
    drawn = {row["field"] for row in curves["content"]["data"]["values"]}
    assert drawn == {"train_ppl", "val_ppl"}
    # The same plots drawn into a page that needs no network (make plots).
    run([sys.executable, "-m", "rnnlm.cli", "plots", "--out", "offline.html"], repo, env)
    offline = (repo / "offline.html").read_text()
    assert offline.count("<svg") == 1 and "Perplexity per epoch" in offline
    assert offline.count('src="data:image/png;base64,') == 3  # zipf, curves, sequence
    assert "<script" not in offline and 'src="http' not in offline
    metrics = model_metrics(repo)
    assert set(metrics) == {"rnn", "ngram", "linear", "mlp"}
    assert list(metrics["rnn"]) == ["val_ppl", "test_ppl", "val_bpc", "test_bpc"]
    # Char level: bits per character is log2 of the perplexity.
    assert metrics["rnn"]["test_bpc"] == pytest.approx(np.log2(metrics["rnn"]["test_ppl"]),
                                                       rel=1e-12)
    assert "val bits/char" in (repo / "reports/comparison.md").read_text()

    again = run(["dvc", "repro"], repo, env)
    assert stages_run(again.stdout) == []
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo, env).stdout

    # Same parameters, same files: every stage run again writes what it wrote, so dvc.lock (the
    # hash of every output, models and metrics included) stays the same byte for byte.
    lock = (repo / "dvc.lock").read_bytes()
    forced = run(["dvc", "repro", "-f"], repo, env)
    assert stages_run(forced.stdout) == list(STAGES)
    assert (repo / "dvc.lock").read_bytes() == lock
    volatile = ("mlflow_run_id", "run_id", "wall_seconds", "tokens_per_s", "hostname")
    for report in (repo / "reports").rglob("*"):
        if report.suffix in (".json", ".csv", ".md"):
            assert not any(key in report.read_text() for key in volatile), report

    # The sequence stage stands apart from the text stages, in both directions.
    set_param(repo, "sequence", "lags", 2)
    lags = run(["dvc", "repro"], repo, env)
    assert stages_run(lags.stdout) == ["sequence"]
    sequence = json.loads((repo / "reports/sequence.json").read_text())
    assert sequence["lags"] == 2 and set(sequence["linear"]) >= {"phi0", "phi1", "phi2"}
    assert sequence["linear"]["mse_k64"] > sequence["linear"]["mse_k1"]
    # DVC's metrics are the figures compared across experiments: a row per model.
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo, env).stdout)[""]["data"]
    assert set(shown) == {f"reports/metrics/{m}.json" for m in ("rnn", "ngram", "linear", "mlp")}
    assert shown["reports/metrics/linear.json"]["data"]["one_step_mse"] == (
        sequence["linear"]["one_step_mse"])
    table = run(["dvc", "metrics", "show"], repo, env).stdout
    assert len(table.splitlines()) == 5 and max(map(len, table.splitlines())) <= 160, table

    set_param(repo, "tokenize", "level", "word")
    words = run(["dvc", "repro"], repo, env)
    assert stages_run(words.stdout) == [
        "tokenize", "vocab", "partition", "ngram", "train", "evaluate"]
    assert len(np.load(repo / "data/processed/ids/train.npy")) == int(0.9 * len(clean.split()))


def all_runs(repo: Path, experiment: str = "rnnlm") -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=[experiment], order_by=["start_time ASC"])


def ngram_runs(repo: Path) -> pd.DataFrame:
    runs = all_runs(repo)
    return runs[runs["tags.model_kind"] == "ngram"]


def test_each_dvc_experiment_is_its_own_run_in_the_repository_store(repo) -> None:
    repo, env = repo
    run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline"], repo, env)
    report = json.loads((repo / "reports/ngram.json").read_text())
    assert report["method"] == "additive" and report["order"] == 3
    if SHARED_CORPUS.is_file():
        assert report["uniform"]["val_ppl"] == pytest.approx(28)

    kn = run(["dvc", "exp", "run", "-n", "kn", "-S", "ngram.method=kneser_ney"], repo, env)
    assert stages_run(kn.stdout) == ["ngram", "evaluate"]
    kn_report = json.loads((repo / "reports/ngram.json").read_text())
    # Back to a configuration DVC has run before: it must run again, not be restored from the
    # run cache, or the experiment would have no MLflow run.
    back = run(["dvc", "exp", "run", "-n", "back", "-S", "ngram.method=additive"], repo, env)
    assert stages_run(back.stdout) == ["ngram", "evaluate"]
    # Queued: runs in a temporary copy under .dvc/tmp/exps/, must still land in repo/mlflow.db.
    run(["dvc", "exp", "run", "--queue", "-n", "five", "-S", "ngram.order=5"], repo, env)
    run(["dvc", "exp", "run", "--run-all"], repo, env)

    runs = ngram_runs(repo)
    assert runs["params.method"].tolist() == ["additive", "kneser_ney", "additive", "additive"]
    assert runs["params.order"].tolist() == ["3", "3", "3", "5"]
    assert runs["tags.dvc_exp_name"].tolist()[1:] == ["kn", "back", "five"]
    assert (runs["status"] == "FINISHED").all()
    assert runs["metrics.val_ppl"].tolist()[:3] == [
        report["val_ppl"], kn_report["val_ppl"], report["val_ppl"]]
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env).stdout)
    five = [e for c in shown for e in c.get("experiments") or []
            if e.get("name") == "five"]
    metrics = five[0]["revs"][0]["data"]["metrics"]["reports/metrics/ngram.json"]["data"]
    assert runs["metrics.best_val_ppl"].iloc[3] == metrics["val_ppl"]
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))
    assert len({*runs["tags.data_checksum"]}) == 1  # the same data under every experiment
    artifacts = repo / "mlartifacts"
    assert {p.parent.parent.name for p in artifacts.rglob("ngram.json")} == {*runs["run_id"]}

    lstm = run(["dvc", "exp", "run", "-n", "lstm", "-S", "model.kind=lstm"], repo, env)
    assert stages_run(lstm.stdout) == ["train", "evaluate"]
    # Two processes (gloo on this CPU), started by Lightning under DVC: still one run.
    ddp = run(["dvc", "exp", "run", "-n", "ddp", "-S", "train.strategy=ddp",
               "-S", "train.devices=2"], repo, env)
    assert stages_run(ddp.stdout) == ["train", "evaluate"]
    assert "distributed_backend=gloo" in ddp.stdout + ddp.stderr
    trained = all_runs(repo)
    trained = trained[trained["tags.model_kind"] != "ngram"]
    assert trained["tags.model_kind"].tolist() == ["gru", "lstm", "lstm"]
    assert trained["tags.dvc_exp_name"].tolist()[1:] == ["lstm", "ddp"]
    # The sequence stage ran once, in the baseline: no experiment touched its parameters. Its
    # run is in an experiment of its own.
    assert all_runs(repo, "rnnlm-sequence")["tags.model_kind"].tolist() == ["ar"]
    assert (trained["status"] == "FINISHED").all()
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    for run_id in trained["run_id"]:
        history = client.get_metric_history(run_id, "val_ppl")
        assert [m.step for m in history] == [1, 2]  # one point per epoch, the epoch as step


def test_a_bpe_experiment_runs_the_whole_pipeline_and_scores_in_bits_per_character(repo
                                                                                  ) -> None:
    repo, env = repo
    run(["dvc", "repro"], repo, env)
    char = model_metrics(repo)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline"], repo, env)
    # A named configuration, run as the DVC experiment of its name.
    (repo / "configs").mkdir()
    (repo / "configs" / "bpe.yaml").write_text("tokenize.level: bpe\ntokenize.vocab_size: 300\n")
    bpe = run([sys.executable, "-m", "rnnlm.cli", "exp", "run", "bpe"], repo, env)
    assert bpe.stdout.startswith("dvc exp run -n bpe -S \"tokenize.level='bpe'\" -S "
                                 "tokenize.vocab_size=300\n")
    assert stages_run(bpe.stdout) == [
        "tokenize", "vocab", "partition", "ngram", "train", "evaluate"]
    tokens = repo / "data/interim/tokens"
    learned = json.loads((tokens / "tokenizer.json").read_text())
    assert learned["model"]["type"] == "BPE" and len(learned["model"]["vocab"]) == 300
    vocab = pd.read_parquet(repo / "data/processed/vocab.parquet")
    assert 100 < len(vocab) <= 300 and vocab["token"].str.len().max() > 2  # subwords
    # The val split is the char level's: its tokens join to the same text.
    clean = (repo / "data/interim/clean.txt").read_text()
    b1, b2 = int(0.9 * len(clean)), int(0.95 * len(clean))
    val = np.load(repo / "data/processed/ids/val.npy")
    decoded = "".join(vocab["token"].to_numpy()[val])
    assert decoded == clean[b1:b2]
    metrics = model_metrics(repo)
    for model in ("rnn", "ngram"):
        assert metrics[model]["val_ppl"] > char[model]["val_ppl"]  # per subword
        # Per character, the same scale as the char models': of the same order.
        assert 0.5 * char[model]["val_bpc"] < metrics[model]["val_bpc"] < 2 * char[model][
            "val_bpc"]
    # The model carries its merges: it continues a prefix with them, joined back to text.
    model = json.loads((repo / "models/rnn/model.json").read_text())
    assert model["text"]["level"] == "bpe" and json.loads(model["text"]["bpe"]) == learned
    out = run([sys.executable, "-m", "rnnlm.cli", "generate", "--model", "rnn", "--prefix",
               "the time traveller", "--tokens", "20"], repo, env).stdout
    assert out.startswith("the time traveller") and len(out) > len("the time traveller") + 20
    samples = (repo / "reports/samples.md").read_text()
    assert samples.count("time traveller") >= 4  # each model, greedy and sampled
    runs = all_runs(repo)
    evaluated = runs[runs["tags.dvc_exp_name"] == "bpe"]
    assert sorted(evaluated["tags.model_kind"]) == ["gru", "ngram"]
    assert evaluated["metrics.val_bpc"].notna().all()
    table = run([sys.executable, "-m", "rnnlm.cli", "runs"], repo, env).stdout
    # One table per corpus and level: the bpe runs apart from the char-level ones.
    assert "bpe level" in table and "char level" in table
    assert "val_bpc" in table.splitlines()[1]


def test_a_clone_pulls_everything_from_a_dvc_remote_and_reruns_nothing(repo) -> None:
    repo, env = repo
    remote = repo.parent / "remote"
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], repo, env)
    run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "results and remote"], repo, env)
    run(["dvc", "push"], repo, env)
    assert any(remote.rglob("*"))

    # A version of the model artifact declared in dvc.yaml, by DVC's registry convention (a
    # GTO tag); `dvc artifacts get` finds it by name and fetches it from the remote.
    run(["gto", "register", "rnn", "--version", "v1.0.0"], repo, env)
    clone = repo.parent / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], repo.parent, env)
    assert not (clone / "models" / "rnn").exists()  # only git's files so far
    run(["dvc", "artifacts", "get", ".", "rnn", "-o", "fetched"], clone, env)
    assert (clone / "fetched/checkpoints/best.ckpt").read_bytes() == (
        repo / "models/rnn/checkpoints/best.ckpt").read_bytes()
    shutil.rmtree(clone / "fetched")
    run(["dvc", "pull"], clone, env)
    again = run(["dvc", "repro"], clone, env)
    assert stages_run(again.stdout) == []
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone, env).stdout

    def metrics(where: Path) -> dict:
        return json.loads(run(["dvc", "metrics", "show", "--json"], where, env).stdout)

    assert metrics(clone) == metrics(repo)
    for output in ("models/rnn/checkpoints/best.ckpt", "data/processed/ids/val.npy",
                   "models/sequence/mlp.pt"):
        assert (clone / output).read_bytes() == (repo / output).read_bytes(), output

    # Nothing ran in the clone, so its store holds nothing yet; the sync (`make repro`'s second
    # step) records the pulled models' runs and registers them, retraining nothing.
    sync = [sys.executable, "-m", "rnnlm.cli", "sync"]
    synced = run(sync, clone, env).stdout
    assert synced.count("recorded from the repository") == 2, synced
    assert "rnnlm-gru version 1 (champion)" in synced and "rnnlm-ngram version 1" in synced
    assert run(sync, clone, env).stdout.count(" in line;") == 2
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone, env).stdout
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("rnnlm-gru", "champion")
    record = json.loads((clone / "reports/train.json").read_text())["run"]
    assert champion.tags["model_checksum"] == record["model_checksum"]
    run_figures = client.get_run(champion.run_id).data.metrics
    assert run_figures["test_ppl"] == model_metrics(clone)["rnn"]["test_ppl"]


def test_bad_params_stop_the_stage_with_a_clear_message(repo) -> None:
    repo, env = repo
    set_param(repo, "tokenize", "levle", "word")
    result = run(["dvc", "repro"], repo, env, check=False)
    assert result.returncode != 0
    assert "unknown key 'tokenize.levle'; allowed here: level, reverse, vocab_size" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_parallel_queue_sweep_puts_every_run_in_the_repository_store(repo) -> None:
    import time

    repo, env = repo
    run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline"], repo, env)
    for name, hidden in (("small", 8), ("wide", 24)):
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", f"model.hidden={hidden}"],
            repo, env)
    run(["dvc", "queue", "start", "-j", "2"], repo, env)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], repo, env).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    else:
        raise AssertionError(f"the queue did not finish:\n{status}")
    assert status.count("Success") == 2, status

    runs = all_runs(repo)
    trained = runs[runs["tags.model_kind"] == "gru"]
    swept = trained[trained["tags.dvc_exp_name"].isin(["small", "wide"])]
    assert sorted(swept["params.hidden"]) == ["24", "8"]
    assert (swept["status"] == "FINISHED").all() and swept["metrics.test_ppl"].notna().all()
    table = run([sys.executable, "-m", "rnnlm.cli", "runs"], repo, env).stdout
    assert "(small)" in table and "(wide)" in table
