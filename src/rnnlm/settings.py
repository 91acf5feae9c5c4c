"""The one typed, validated view of params.yaml that every stage reads.

Unknown keys, wrong types and out-of-range values stop a stage with a message naming the key,
the bad value and what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from rnnlm.errors import RnnlmError
from rnnlm.neural.batches import Scheme
from rnnlm.neural.options import Kind, Optimizer, Precision, Schedule, TrainerOptions
from rnnlm.ngram.model import Method, Smoothing
from rnnlm.text.clean import CleanMode
from rnnlm.text.tokenizers import Level

PARAMS_FILE = Path("params.yaml")

Hex40 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{40}$")]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]


class Section(BaseModel):
    # strict: "32" or true for an integer is a mistake to report, not to coerce.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SourceParams(Section):
    """One source file: its mirrors and its checksum."""

    urls: list[str] = Field(min_length=1)
    sha1: Hex40 | None = None
    sha256: Hex64 | None = None

    @model_validator(mode="after")
    def _one_checksum(self) -> SourceParams:
        if (self.sha1 is None) == (self.sha256 is None):
            raise ValueError("give exactly one of sha1 or sha256")
        return self

    @property
    def algorithm(self) -> str:
        return "sha1" if self.sha1 else "sha256"

    @property
    def checksum(self) -> str:
        return self.sha1 or self.sha256 or ""


class DataParams(SourceParams):
    documents: list[SourceParams] = Field(default_factory=list)
    separator: str = "<eod>"
    # Each source file's size bound, enforced while it streams (rnnlm.text.download's default).
    max_bytes: int = Field(2**30, ge=1)

    @field_validator("separator")
    @classmethod
    def _one_token(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("the document separator must be a non-empty string without "
                             f"whitespace (it is one token at word level too), got {value!r}")
        if value == "<unk>":
            raise ValueError("'<unk>' is the unknown token; choose another separator")
        # A separator whose end repeats its start ("##", "=x=") could be found again straddling
        # a piece boundary of the streaming tokenizer; "<eod>" and the like cannot.
        if any(value[:i] == value[-i:] for i in range(1, len(value))):
            raise ValueError(f"the document separator {value!r} ends with its own beginning, so "
                             "two of them could overlap; choose one that does not, e.g. '<eod>'")
        return value

    @property
    def sources(self) -> list[SourceParams]:
        """Every document's source, in order: the file of `urls` first."""
        return [SourceParams(urls=self.urls, sha1=self.sha1, sha256=self.sha256),
                *self.documents]

    @property
    def document_separator(self) -> str | None:
        """The separator when there are several documents to separate, else None."""
        return self.separator if self.documents else None


class CleanParams(Section):
    mode: CleanMode = "d2l"
    strip_gutenberg: bool = False


class TokenizeParams(Section):
    level: Level = "char"
    reverse: bool = False
    # bpe only: tokens in the learned vocabulary, its special tokens and alphabet included.
    vocab_size: int = Field(1024, ge=16, le=65536)


class SplitParams(Section):
    train: float = Field(0.9, gt=0, lt=1)
    val: float = Field(0.05, gt=0, lt=1)
    test: float = Field(0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitParams:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-9):
            raise ValueError(f"split.train + split.val + split.test must be 1, got {total:g}")
        return self


class VocabParams(Section):
    min_freq: int = Field(0, ge=0)
    reserved: list[str] = Field(default_factory=list)

    @field_validator("reserved")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        if "<unk>" in value:
            raise ValueError("'<unk>' is always index 0; do not list it in vocab.reserved")
        if len(set(value)) != len(value):
            raise ValueError(f"vocab.reserved has duplicates: {value}")
        return value


class PartitionParams(Section):
    scheme: Scheme = "sequential"
    batch_size: int = Field(32, ge=1)
    num_steps: int = Field(35, ge=1)


class NgramParams(Section):
    order: int = Field(3, ge=1, le=5)
    method: Method = "additive"
    eps: list[Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: [1.0, 1.0, 1.0],
                                                     min_length=1)
    k: float = Field(1.0, gt=0)

    @property
    def eps_per_order(self) -> list[float]:
        """eps for orders 1..order: a short list repeats its last value, extra values are unused."""
        return [self.eps[min(i, len(self.eps) - 1)] for i in range(self.order)]

    def smoothing(self) -> Smoothing:
        return Smoothing(self.method, tuple(self.eps_per_order), self.k)


class ModelParams(Section):
    kind: Kind = "gru"
    hidden: int = Field(256, ge=1)
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    embed: int = Field(32, ge=0)
    tie_weights: bool = False
    context: int = Field(8, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> ModelParams:
        if self.tie_weights and (self.embed != self.hidden or self.kind in ("scratch", "mlp")):
            raise ValueError("model.tie_weights needs model.kind rnn, gru or lstm and "
                             f"model.embed == model.hidden, got embed={self.embed}, "
                             f"hidden={self.hidden}")
        return self


class TrainParams(Section):
    epochs: int = Field(20, ge=1)
    optimizer: Optimizer = "adam"
    lr: float = Field(0.002, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Schedule = "cosine"
    clip: float = Field(1.0, ge=0)
    patience: int = Field(0, ge=0)
    accelerator: str = "auto"
    devices: int | Literal["auto"] = "auto"
    precision: Precision = "32"
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    threads: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    resume: bool = False

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("devices")
    @classmethod
    def _a_count_of_devices(cls, value: int | str) -> int | str:
        if isinstance(value, int) and (value == 0 or value < -1):
            raise ValueError("train.devices is a number of devices (>= 1), -1 for all of them, "
                             f"or 'auto'; got {value}")
        return value

    def trainer_options(self) -> TrainerOptions:
        return TrainerOptions(**self.model_dump(include=set(TrainerOptions.__dataclass_fields__)))


class EvaluateParams(Section):
    prefixes: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["time traveller", "the time machine"], min_length=1)
    tokens: int = Field(100, ge=1)
    # The served API's rule too (rnnlm.sampling.check_temperature), but 0 is the greedy sample
    # the page already shows: finite and > 0.
    temperature: float = Field(0.8, gt=0, allow_inf_nan=False)
    top_k: int = Field(0, ge=0)


class SequenceMLPParams(Section):
    hidden: int = Field(10, ge=1)
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(0.01, gt=0)


class SequenceParams(Section):
    seed: int = Field(0, ge=0)
    length: int = Field(1000, ge=2)
    frequency: float = Field(0.01, gt=0)
    noise: float = Field(0.2, ge=0)
    path: str | None = Field(None, min_length=1)
    column: str | None = Field(None, min_length=1)
    fit: int | float = 600
    lags: int = Field(4, ge=1)
    steps: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [1, 4, 16, 64],
                                                     min_length=1)
    mlp: SequenceMLPParams = SequenceMLPParams()

    @field_validator("fit")
    @classmethod
    def _count_or_fraction(cls, value: int | float) -> int | float:
        count, fraction = isinstance(value, int), isinstance(value, float)
        if (count and value < 1) or (fraction and not 0 < value < 1):
            raise ValueError(f"sequence.fit must be a count of points (an integer >= 1) or a "
                             f"fraction of the series (0 < fit < 1), got {value!r}")
        return value

    @field_validator("steps")
    @classmethod
    def _distinct_steps(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"sequence.steps has duplicates: {value}")
        return sorted(value)

    @model_validator(mode="after")
    def _column_needs_path(self) -> SequenceParams:
        if self.column is not None and self.path is None:
            raise ValueError("sequence.column names a column of sequence.path; set the path too")
        return self


class Params(Section):
    seed: int = Field(0, ge=0)
    data: DataParams
    clean: CleanParams = CleanParams()
    tokenize: TokenizeParams = TokenizeParams()
    split: SplitParams = SplitParams()
    vocab: VocabParams = VocabParams()
    partition: PartitionParams = PartitionParams()
    ngram: NgramParams = NgramParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    sequence: SequenceParams = SequenceParams()


def _describe(error: ErrorDetails, model: type[BaseModel]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, error["loc"][:-1])
        return f"unknown key '{key}'; allowed here: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"missing key '{key}'"
    return f"'{key}' = {error['input']!r}: {error['msg']}"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        if isinstance(part, int):
            continue  # an entry of a list: its keys are those of the list's item model
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate an already-loaded mapping; raise RnnlmError listing every problem."""
    if not isinstance(raw, dict):
        raise RnnlmError(f"{source} must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(f"  - {_describe(e, Params)}" for e in exc.errors())
        raise RnnlmError(f"{source} is invalid:\n{problems}") from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, first: int, again: int) -> None:
        super().__init__(f"{key!r} at lines {first} and {again}")
        self.key, self.first, self.again = key, first, again


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping: plain YAML keeps the last
    silently, so a second `model:` section would drop every key of the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        lines: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in lines:
                raise _DuplicateKey(key, lines[key], line)
            lines[key] = line
        return super().construct_mapping(node, deep=deep)


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        # A SafeLoader: plain data only.
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise RnnlmError(f"{path} not found: run the stage from the repository root") from None
    except _DuplicateKey as exc:
        raise RnnlmError(f"{path} gives the key {exc.key!r} twice, at lines {exc.first} and "
                         f"{exc.again}: YAML would keep only the second; merge them into one"
                         ) from None
    except yaml.YAMLError as exc:
        raise RnnlmError(f"{path} is not valid YAML: {exc}") from None
    return parse_params(raw, str(path))
