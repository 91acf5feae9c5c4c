"""Where the pipeline's stages read and write, relative to the repository root (dvc.yaml declares
the same paths); the command-line tools find the fitted models here too."""

from pathlib import Path

RAW_TEXT = Path("data/raw/corpus.txt")
RAW_MANIFEST = Path("data/raw/manifest.json")
CLEAN_TEXT = Path("data/interim/clean.txt")
TOKENS_DIR = Path("data/interim/tokens")
VOCAB = Path("data/processed/vocab.parquet")
IDS_DIR = Path("data/processed/ids")
REPORTS = Path("reports")
FIGURES = REPORTS / "figures"
CORPUS_REPORT = REPORTS / "corpus.json"
ZIPF_FIGURE = FIGURES / "zipf.png"
PARTITION_REPORT = REPORTS / "partition.json"


def ids_path(split: str) -> Path:
    return IDS_DIR / f"{split}.npy"


def metrics_path(model: str) -> Path:
    """reports/metrics/rnn.json, ngram.json (evaluate), linear.json, mlp.json (sequence)."""
    return METRICS_DIR / f"{model}.json"


NGRAM_DIR = Path("models/ngram")
NGRAM_REPORT = REPORTS / "ngram.json"
RNN_DIR = Path("models/rnn")
CHECKPOINTS = RNN_DIR / "checkpoints"
TRAIN_REPORT = REPORTS / "train.json"
TRAIN_METRICS = REPORTS / "train_metrics.csv"
TRAIN_CURVES = FIGURES / "train_curves.png"
# DVC's metrics: one file per model with the same keys, so that `dvc metrics show` prints a row
# per model and a column per measure (a table that fits a terminal).
METRICS_DIR = REPORTS / "metrics"
COMPARISON = REPORTS / "comparison.md"
SAMPLES = REPORTS / "samples.md"
# What evaluate measured of each model, keyed by its checksum: what the store sync logs.
EVALUATION = REPORTS / "evaluation.json"

SEQUENCE_DIR = Path("models/sequence")
SEQUENCE_REPORT = REPORTS / "sequence.json"
SEQUENCE_FIGURE = FIGURES / "sequence.png"
