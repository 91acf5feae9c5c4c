"""The Model Registry: one registered model per kind of model (`rnnlm-gru`, `rnnlm-lstm`, ...,
`rnnlm-ngram`; the prefix is the experiment's name), one version per distinct fitted model, and
the alias `champion` on the version with the lowest val perplexity.

A version is the logged MLflow Model of the run that fitted it, tagged with the model's checksum:
scoring the same model again (re-running an experiment retrains it to the same weights) updates
that version's tags instead of adding a version.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from rnnlm import tracking
from rnnlm.serving.logged_model import NAME

CHAMPION = "champion"
RANKED_BY = "val_ppl"  # the version tag the champion is chosen by: lowest wins


def registered_name(kind: str) -> str:
    return f"{tracking.experiment_name()}-{kind}"


def logged_model_id(client: MlflowClient, run_id: str) -> str | None:
    """The newest MLflow Model the run logged (a resumed training logs one per session)."""
    run = client.get_run(run_id)
    for output in reversed(run.outputs.model_outputs if run.outputs else []):
        if client.get_logged_model(output.model_id).name == NAME:
            return output.model_id
    return None


def register(client: MlflowClient, run_id: str, kind: str, checksum: str,
             figures: Mapping[str, float], description: str) -> ModelVersion | None:
    """Register the run's MLflow Model as a version of `rnnlm-<kind>` (or find the version of
    the same model), tag it with `figures` (val_ppl, test_ppl, ...), and move the champion
    alias to the best version."""
    # The registry checks a version's models:/ source through the process's tracking URI, not
    # the client's: in a DVC experiment's temporary copy the default would be another store.
    mlflow.set_tracking_uri(client.tracking_uri)
    name = registered_name(kind)
    _ensure_registered(client, name, kind)
    found = client.search_model_versions(
        f"name = '{name}' and tags.{tracking.MODEL_TAG} = '{checksum}'")
    if found:
        version = min(found, key=lambda v: int(v.version))  # the first registration of it
    else:
        model_id = logged_model_id(client, run_id)
        if model_id is None:
            logging.warning("run %s logged no MLflow Model; not registering it as %s", run_id,
                            name)
            return None
        version = client.create_model_version(
            name, source=f"models:/{model_id}", run_id=run_id, model_id=model_id,
            tags={tracking.MODEL_TAG: checksum}, description=description)
    for key, value in figures.items():
        client.set_model_version_tag(name, version.version, key, repr(float(value)))
    _crown(client, name)
    return client.get_model_version(name, version.version)


def _ensure_registered(client: MlflowClient, name: str, kind: str) -> None:
    try:
        client.create_registered_model(
            name, tags={"model_kind": kind},
            description=f"rnnlm {kind} language models, one version per distinct fitted "
                        f"model; alias {CHAMPION!r}: the lowest {RANKED_BY}")
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise


def _crown(client: MlflowClient, name: str) -> None:
    """Point the champion alias at the version with the lowest val perplexity (the earliest of
    equals)."""
    ranked = [(float(v.tags[RANKED_BY]), int(v.version))
              for v in client.search_model_versions(f"name = '{name}'")
              if RANKED_BY in v.tags and math.isfinite(float(v.tags[RANKED_BY]))]
    if ranked:
        client.set_registered_model_alias(name, CHAMPION, str(min(ranked)[1]))
