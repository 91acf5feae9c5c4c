"""Logging a fitted model's directory as an MLflow Model of the run that fitted it: the UI's
"Models" column, `runs:/<run id>/model`, and what the evaluate stage registers."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

NAME = "model"  # the logged model's name in its run
MODEL_CODE = Path(__file__).with_name("model_code.py")
PACKAGE = Path(__file__).resolve().parents[1]  # src/rnnlm, logged as the model's code
# What the package imports when it serves a model (dvc and the pipeline's own needs are left
# out), pinned to the versions that fitted it.
SERVING_DISTRIBUTIONS = ("torch", "pytorch-lightning", "mlflow", "numpy", "pandas", "pyarrow",
                         "tokenizers")
# A request MLflow runs once through the model when logging it, shown in the UI.
INPUT_EXAMPLE = pd.DataFrame({"text": ["the time traveller"]})


def pip_requirements() -> list[str]:
    pins = []
    for name in SERVING_DISTRIBUTIONS:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows one: a model of a gigabyte is not written
    twice on its way to MLflow (which copies it into the store once more)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def log_language_model(run_id: str, files: Mapping[str, Path], description: str) -> str:
    """Log `files` (name in the model directory -> file) as the run's MLflow Model `model`;
    return its model id. MLflow runs INPUT_EXAMPLE through it first, so a model that cannot
    be loaded or scored is never logged."""
    import mlflow
    from mlflow.models import Model

    # The bars of the model's download, which MLflow loads to check the example, are noise here.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    from rnnlm.serving.pyfunc import ARTIFACT, SIGNATURE
    from rnnlm.tracking import connection

    uri = connection.tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    # Created here, in the run's experiment: MLflow would put it in the active experiment.
    model = client.create_logged_model(run.info.experiment_id, name=NAME, source_run_id=run_id,
                                       params=dict(run.data.params))
    with tempfile.TemporaryDirectory() as tmp:
        directory, code = Path(tmp, ARTIFACT), Path(tmp, "code", PACKAGE.name)
        for name, path in files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(path, directory / name)
        shutil.copytree(PACKAGE, code, ignore=shutil.ignore_patterns("__pycache__"))
        info = Model.log(artifact_path=None, model_id=model.model_id, flavor=mlflow.pyfunc,
                         run_id=run_id,
                         python_model=str(MODEL_CODE), artifacts={ARTIFACT: str(directory)},
                         code_paths=[str(code)], signature=SIGNATURE,
                         input_example=INPUT_EXAMPLE, pip_requirements=pip_requirements(),
                         metadata={"description": description})
    return str(info.model_id)
