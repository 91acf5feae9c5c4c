"""The Model Registry: one registered model per kind of model (`rnnlm-gru`, `rnnlm-lstm`, ...,
`rnnlm-ngram`; the prefix is the experiment's name) and one version per distinct fitted model.

The rule of the champion (also each registered model's description):
- a version is registered only if its figures are finite and its val perplexity is below the
  uniform model's (the vocabulary size): a model no better than a guess is never served;
- only versions scored on the same text (tag `data_checksum`) at the same tokenization level
  (tag `tokenize_level`) are compared; among them the lowest val bits per character (tag
  `val_bpc`) wins, the earliest version of equals;
- the alias `champion` holds the best version of the group of the repository's workspace: a
  registration from the workspace points it there; one from a queued DVC experiment (a temporary
  copy) moves it only within the group that already holds it.

A version is the logged MLflow Model of a run that fitted the model, tagged with the model's
checksum: registering the same model again updates that version's tags instead of adding one.
The registry has no transactions, so registration converges instead: create, re-read, keep the
lowest version of a checksum and delete the others (several processes registering the same model
at once all end on the same version).

Values written into filter strings are checksums (hex digits, checked); names and everything a
user chose are matched here, in Python, never quoted into a filter.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode

from rnnlm.serving.logged_model import NAME
from rnnlm.tracking import connection, records

CHAMPION = "champion"
RANKED_BY = "val_bpc"  # the version tag the champion is chosen by: lowest wins
DATA_TAG, LEVEL_TAG = "data_checksum", "tokenize_level"  # a version's group
FIGURES = ("val_ppl", "test_ppl", "val_bpc", "test_bpc")
_ROUNDS = 5  # of create / re-read / delete duplicates, until one version holds the checksum

RULE = (f"One version per distinct fitted model (tag {records.MODEL_TAG}); a model is "
        "registered only if its figures are finite and its val perplexity is below the uniform "
        f"model's. Alias {CHAMPION!r}: among the versions scored on the same text (tag "
        f"{DATA_TAG}) at the same tokenization level (tag {LEVEL_TAG}) as the repository's "
        f"workspace, the lowest val bits per character (tag {RANKED_BY}).")


def registered_name(kind: str) -> str:
    return f"{connection.experiment_name()}-{kind}"


@dataclass(frozen=True)
class Candidate:
    """A fitted model offered to the registry: what identifies it and what ranks it."""

    kind: str  # of its registered model, rnnlm-<kind>
    checksum: str  # model_checksum
    data_checksum: str  # the text it was fitted and scored on
    level: str  # tokenize.level
    vocab_size: int  # the uniform model's perplexity
    figures: Mapping[str, float]  # val_ppl, test_ppl, val_bpc, test_bpc
    description: str

    def unworthy(self) -> str | None:
        """Why this model must not be registered, or None."""
        missing = [key for key in FIGURES if key not in self.figures]
        if missing:
            return f"it has no {', '.join(missing)} (run `dvc repro` to evaluate it)"
        bad = {k: v for k, v in self.figures.items() if not math.isfinite(v)}
        if bad:
            return f"its figures are not finite ({bad})"
        if self.figures["val_ppl"] >= self.vocab_size:
            return (f"its val perplexity {self.figures['val_ppl']:.4g} is no better than the "
                    f"uniform model's ({self.vocab_size})")
        return None

    @property
    def tags(self) -> dict[str, str]:
        return {records.MODEL_TAG: self.checksum, DATA_TAG: self.data_checksum,
                LEVEL_TAG: self.level, "vocab_size": str(self.vocab_size),
                **{key: repr(float(value)) for key, value in self.figures.items()}}


def versions_tagged(client: MlflowClient, name: str, tag: str, value: str) -> list[ModelVersion]:
    """The versions of `name` tagged `tag` = `value` (a checksum)."""
    found = client.search_model_versions(f"tags.{tag} = {records.checksum_literal(value)}")
    return [v for v in found if v.name == name]


def logged_model_id(client: MlflowClient, run_id: str) -> str | None:
    """The newest MLflow Model the run logged (a resumed training logs one per session)."""
    run = client.get_run(run_id)
    for output in reversed(run.outputs.model_outputs if run.outputs else []):
        if client.get_logged_model(output.model_id).name == NAME:
            return output.model_id
    return None


def register(client: MlflowClient, run_id: str, model: Candidate, in_workspace: bool = True
             ) -> ModelVersion | None:
    """Register the run's MLflow Model as the version of `rnnlm-<kind>` holding this model (or
    find that version), make its tags `model`'s, and point the champion alias at the best version
    of its group (`in_workspace` False: only if that group already holds the alias). None, with a
    warning, for a model the rule refuses. Writes nothing that is already so."""
    name = registered_name(model.kind)
    why = model.unworthy()
    if why is not None:
        logging.warning("not registering %s as %s: %s", model.checksum[:12], name, why)
        return None
    # The registry checks a version's models:/ source through the process's tracking URI, not
    # the client's: in a DVC experiment's temporary copy the default would be another store.
    mlflow.set_tracking_uri(client.tracking_uri)
    _ensure_registered(client, name, model.kind)
    for attempt in range(_ROUNDS):
        try:
            version = _the_version(client, name, run_id, model)
            if version is None:
                return None
            for key, value in model.tags.items():
                if version.tags.get(key) != value:
                    client.set_model_version_tag(name, version.version, key, value)
            _crown(client, name, model, in_workspace)
        except MlflowException:
            # Another process removed this version as a duplicate of an earlier one, or wrote
            # the same tag at the same moment (the store's unique key refuses the second): again.
            if attempt == _ROUNDS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
            continue
        if len(versions_tagged(client, name, records.MODEL_TAG, model.checksum)) == 1:
            return client.get_model_version(name, version.version)
    raise MlflowException(f"registering {model.checksum[:12]} as {name} did not converge")


def _the_version(client: MlflowClient, name: str, run_id: str, model: Candidate
                 ) -> ModelVersion | None:
    """The one version of `name` holding `model.checksum`: created if there is none; when
    several processes created one each, the lowest stays and the others are deleted."""
    found = versions_tagged(client, name, records.MODEL_TAG, model.checksum)
    if not found:
        model_id = logged_model_id(client, run_id)
        if model_id is None:
            logging.warning("run %s logged no MLflow Model; not registering it as %s", run_id,
                            name)
            return None
        client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id,
                                    model_id=model_id, tags=model.tags,
                                    description=model.description)
        found = versions_tagged(client, name, records.MODEL_TAG, model.checksum)
    found.sort(key=lambda v: int(v.version))
    for duplicate in found[1:]:
        try:
            client.delete_model_version(name, duplicate.version)
        except MlflowException as exc:
            if exc.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                raise  # already deleted by another process that saw the same duplicate
    return found[0]


def _ensure_registered(client: MlflowClient, name: str, kind: str) -> None:
    description = f"rnnlm {kind} language models. {RULE}"
    try:
        client.create_registered_model(name, tags={"model_kind": kind}, description=description)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        if client.get_registered_model(name).description != description:
            client.update_registered_model(name, description=description)


def group(version: ModelVersion) -> tuple[str, str] | None:
    """(data checksum, level) of a version registered under the rule, else None."""
    data, level = version.tags.get(DATA_TAG), version.tags.get(LEVEL_TAG)
    return (data, level) if data and level else None


def rank(version: ModelVersion) -> float | None:
    """A version's val bits per character, if it may hold the alias at all."""
    try:
        value = float(version.tags[RANKED_BY])
        uniform = float(version.tags["vocab_size"])
        val_ppl = float(version.tags["val_ppl"])
    except (KeyError, ValueError):
        return None
    fine = math.isfinite(value) and math.isfinite(val_ppl) and val_ppl < uniform
    return value if fine and group(version) else None


def _crown(client: MlflowClient, name: str, model: Candidate, in_workspace: bool) -> None:
    """Point the champion alias at the best version of `model`'s group (see the rule)."""
    try:
        holder: ModelVersion | None = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        holder = None
    ours = (model.data_checksum, model.level)
    if not in_workspace and holder is not None and rank(holder) is not None \
            and group(holder) != ours:
        return  # a queued experiment on other text: the workspace's group keeps the alias
    ranked = [(score, int(v.version))
              for v in versions_tagged(client, name, DATA_TAG, model.data_checksum)
              if group(v) == ours and (score := rank(v)) is not None]
    if ranked:
        best = str(min(ranked)[1])
        if holder is None or str(holder.version) != best:
            client.set_registered_model_alias(name, CHAMPION, best)
