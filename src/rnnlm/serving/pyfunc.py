"""The MLflow `python_function` model: a request is a table with a `text` column (each text
scored) or a `prefix` column (each prefix continued, with the params `tokens`, `temperature`,
`top_k`, `seed`); the answer is a table with one row per request row.

The model directory (model.json, vocab.parquet, the checkpoint or the n-gram counts) is the
MLflow Model's artifact `model`; the weights are read with `torch.load(weights_only=True)`, and
this class is found by import from the package (MLflow's "models from code", model_code.py),
never unpickled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

from rnnlm.errors import RnnlmError
from rnnlm.serving.budget import Limits, RequestStopped, interrupter, serving
from rnnlm.serving.language_model import LanguageModel

SCORE, GENERATE = "text", "prefix"  # the request's column says what is asked
ARTIFACT = "model"  # the model directory, under this artifact key
DEFAULTS: dict[str, Any] = {"tokens": 100, "temperature": 1.0, "top_k": 0, "seed": 0}

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec(DataType.string, SCORE, required=False),
                   ColSpec(DataType.string, GENERATE, required=False)]),
    outputs=Schema([
        ColSpec(DataType.double, "perplexity", required=False),
        ColSpec(DataType.double, "bits_per_character", required=False),
        ColSpec(DataType.long, "characters", required=False),
        ColSpec(Array(DataType.string), "tokens", required=False),
        ColSpec(Array(DataType.double), "log_probs", required=False),
        ColSpec(DataType.string, "text", required=False),
    ]),
    params=ParamSchema([
        ParamSpec("tokens", DataType.long, DEFAULTS["tokens"]),
        ParamSpec("temperature", DataType.double, DEFAULTS["temperature"]),
        # 0: draw among all tokens.
        ParamSpec("top_k", DataType.long, DEFAULTS["top_k"]),
        ParamSpec("seed", DataType.long, DEFAULTS["seed"]),
    ]),
)


def bad_request(message: str) -> MlflowException:
    """An error the scoring server answers with HTTP 400 and this message."""
    return MlflowException.invalid_parameter_value(message)


def stopped(message: str) -> MlflowException:
    """Work stopped before its end (deadline, client gone, shutdown): HTTP 503."""
    return MlflowException(message, error_code=TEMPORARILY_UNAVAILABLE)


class LanguageModelPyfunc(PythonModel):
    """One object answers every request, from many threads at once: nothing of a request is
    kept on it (the draws' states live in the call)."""

    def load_context(self, context: PythonModelContext) -> None:
        self.model = LanguageModel.load(context.artifacts[ARTIFACT])
        self.limits = Limits.from_environment()

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        # Served: the limits and the request's stop apply; loaded in a notebook: neither.
        served = serving()
        limits = self.limits if served else Limits.none()
        interrupt = interrupter() if served else _never
        try:
            interrupt()
            return self._answer(_table(model_input), {**DEFAULTS, **(params or {})}, limits,
                                interrupt)
        except RequestStopped as exc:
            raise stopped(str(exc)) from None
        except RnnlmError as exc:
            raise bad_request(str(exc)) from None

    def _answer(self, table: pd.DataFrame, params: dict[str, Any], limits: Limits,
                interrupt: Callable[[], None]) -> pd.DataFrame:
        asked = [c for c in (SCORE, GENERATE) if c in table and table[c].notna().any()]
        if len(asked) != 1:
            raise RnnlmError(
                f"a request needs a {SCORE!r} column (texts to score) or a {GENERATE!r} column "
                "(prefixes to continue)" + ("; this one has both: send one kind of request at "
                                            "a time" if asked else ""))
        column = table[asked[0]]
        wrong = [type(v).__name__ for v in column if not isinstance(v, str)]
        if wrong:
            raise RnnlmError(f"every row's {asked[0]!r} must be a string, not {wrong[0]} (one "
                             "row per text)")
        limits.check_rows(len(column))
        if asked[0] == SCORE:
            limits.check_characters(sum(len(text) for text in column))
            return pd.DataFrame([asdict(self.model.score(text, interrupt)) for text in column])
        tokens, top_k = int(params["tokens"]), int(params["top_k"])
        if top_k < 0:
            raise RnnlmError(f"top_k must be >= 0 (0: all tokens), got {top_k}")
        if tokens < 0:
            raise RnnlmError(f"tokens must be a whole number >= 0, got {tokens}")
        limits.check_new_tokens(len(column), tokens)
        limits.check_characters(sum(len(prefix) for prefix in column))  # read first
        return pd.DataFrame({"text": [
            self.model.generate(prefix, tokens, float(params["temperature"]), top_k or None,
                                int(params["seed"]), interrupt) for prefix in column]})


def _never() -> None:
    """The stop check of a model called in process: it never stops."""


def _table(model_input: Any) -> pd.DataFrame:
    """The request as a table: a DataFrame, or a dict/list of records as called in process."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    try:
        return pd.DataFrame(model_input)
    except (TypeError, ValueError) as exc:
        raise RnnlmError(f"a request is a table with a {SCORE!r} or a {GENERATE!r} column, "
                         f"not {type(model_input).__name__}: {exc}") from None
