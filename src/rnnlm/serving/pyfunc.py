"""The MLflow `python_function` model: a request is a table with a `text` column (each text
scored) or a `prefix` column (each prefix continued, with the params `tokens`, `temperature`,
`top_k`, `seed`); the answer is a table with one row per request row.

The model directory (model.json, vocab.parquet, the checkpoint or the n-gram counts) is the
MLflow Model's artifact `model`; the weights are read with `torch.load(weights_only=True)`, and
this class is found by import from the package (MLflow's "models from code", model_code.py),
never unpickled.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel, PythonModelContext
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

from rnnlm.errors import RnnlmError
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


class LanguageModelPyfunc(PythonModel):
    def load_context(self, context: PythonModelContext) -> None:
        self.model = LanguageModel.load(context.artifacts[ARTIFACT])

    def predict(self, context: PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            return self._answer(_table(model_input), {**DEFAULTS, **(params or {})})
        except RnnlmError as exc:
            raise bad_request(str(exc)) from None

    def _answer(self, table: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
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
        if asked[0] == SCORE:
            return pd.DataFrame([asdict(self.model.score(text)) for text in column])
        top_k = int(params["top_k"])
        if top_k < 0:
            raise RnnlmError(f"top_k must be >= 0 (0: all tokens), got {top_k}")
        return pd.DataFrame({"text": [
            self.model.generate(prefix, int(params["tokens"]), float(params["temperature"]),
                                top_k or None, int(params["seed"])) for prefix in column]})


def _table(model_input: Any) -> pd.DataFrame:
    """The request as a table: a DataFrame, or a dict/list of records as called in process."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    try:
        return pd.DataFrame(model_input)
    except (TypeError, ValueError) as exc:
        raise RnnlmError(f"a request is a table with a {SCORE!r} or a {GENERATE!r} column, "
                         f"not {type(model_input).__name__}: {exc}") from None
