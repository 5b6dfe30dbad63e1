"""Typed run configuration.

A run is configured by a :class:`RunConfig`, built from a preset (TOML shipped in
``evolm/presets``), an optional user TOML file, and CLI overrides, merged in that order. Unknown
keys are errors and every value is validated before the run starts, with messages that name the
key and the allowed values.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evolm.registry import is_import_path

__all__ = [
    "ARCHIVE_CONFIGS",
    "LLM_CONFIGS",
    "ArchiveConfig",
    "BanditConfig",
    "BestOfNArchiveConfig",
    "BudgetConfig",
    "CVTArchiveConfig",
    "ConfigError",
    "CustomLLMConfig",
    "DeepGridArchiveConfig",
    "EngineConfig",
    "FakeLLMConfig",
    "FinetuneConfig",
    "GridArchiveConfig",
    "HFLLMConfig",
    "LLMConfig",
    "LlamaCppLLMConfig",
    "OpenAILLMConfig",
    "OperatorConfig",
    "PopulationArchiveConfig",
    "ReplayLLMConfig",
    "RunConfig",
    "VLLMLLMConfig",
    "format_validation_error",
    "list_presets",
    "load_config",
    "load_preset",
    "parse_assignments",
]


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DomainConfig(_Strict):
    name: str = Field("image", description="registered domain name (see `evolm run --help`)")
    params: dict[str, Any] = Field(default_factory=dict, description="domain parameters")


class ArchiveConfig(_Strict):
    """Settings every archive kind takes; ``[archive]`` is one of the kinds below, chosen by
    ``kind`` (a key that does not apply to that kind fails at load)."""

    kind: str = Field("grid", description="archive type")
    selection: Literal["uniform", "fitness", "curiosity"] = Field(
        "uniform", description="parent selection strategy"
    )
    qd_offset: float | None = Field(
        None, description="QD-score offset; default: the domain's lowest fitness"
    )

    def params(self) -> dict[str, Any]:
        """The archive constructor's parameters (the kind's own keys)."""
        return self.model_dump(exclude=set(ArchiveConfig.model_fields))


def _check_bins(v: int | list[int]) -> int | list[int]:
    values = [v] if isinstance(v, int) else v
    if not values or any(b < 1 for b in values):
        raise ValueError("every bin count must be an integer >= 1")
    return v


class GridArchiveConfig(ArchiveConfig):
    kind: Literal["grid"] = "grid"
    bins: int | list[int] = Field(10, description="grid bins: one count, or one per descriptor")

    @field_validator("bins")
    @classmethod
    def _bins_positive(cls, v: int | list[int]) -> int | list[int]:
        return _check_bins(v)


class CVTArchiveConfig(ArchiveConfig):
    kind: Literal["cvt"] = "cvt"
    cells: int = Field(100, ge=1, description="CVT cells")


class DeepGridArchiveConfig(ArchiveConfig):
    kind: Literal["deep_grid"] = "deep_grid"
    bins: int | list[int] = Field(10, description="grid bins: one count, or one per descriptor")
    per_cell: int = Field(4, ge=1, description="deep grid: elites kept per cell")

    @field_validator("bins")
    @classmethod
    def _bins_positive(cls, v: int | list[int]) -> int | list[int]:
        return _check_bins(v)


class PopulationArchiveConfig(ArchiveConfig):
    kind: Literal["population"] = "population"
    size: int = Field(64, ge=1, description="GA population size")
    tournament_size: int = Field(3, ge=1, description="GA tournament size")


class BestOfNArchiveConfig(ArchiveConfig):
    kind: Literal["best_of_n"] = "best_of_n"


ARCHIVE_CONFIGS: dict[str, type[ArchiveConfig]] = {
    "grid": GridArchiveConfig,
    "cvt": CVTArchiveConfig,
    "deep_grid": DeepGridArchiveConfig,
    "population": PopulationArchiveConfig,
    "best_of_n": BestOfNArchiveConfig,
}
"""The ``[archive]`` model of each archive kind (the kinds of :data:`evolm.archives.ARCHIVES`)."""


class LLMConfig(_Strict):
    """Settings every backend takes; ``[llm]`` and each ``[[models]]`` entry is one of the
    backends below, chosen by ``backend`` (a key that does not apply to it fails at load)."""

    backend: str = Field("fake", description="LLM backend (`evolm models` lists what can run here)")
    name: str | None = Field(
        None,
        description="label of this model in arms and `evolm status` (default: the model name)",
    )
    weight: float = Field(
        1.0, ge=0.0, description="relative share of requests for this model in a fixed mix"
    )
    model: str | None = Field(
        None,
        description="model name: sent to an OpenAI-compatible server; recorded with every call "
        "(default for local backends: derived from model_path)",
    )
    mode: Literal["chat", "completion"] = Field("chat", description="prompt style")
    concurrency: int = Field(
        4, ge=1, le=1024, description="LLM requests in flight at once (hf, vllm: the batch size)"
    )
    samples_per_prompt: int = Field(
        1,
        ge=1,
        le=1024,
        description="[llm] only: candidates sampled from each prompt, each with its own seed "
        "(vllm samples them in one request; llama_cpp evaluates the prompt once)",
    )
    max_tokens: int = Field(
        512,
        ge=1,
        description="completion length limit (operators also stop at about 1.5-2x the parent's "
        "length unless their parent_sized parameter is false)",
    )
    temperature: float = Field(0.8, ge=0.0, le=5.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    repeat_penalty: float = Field(
        1.0,
        gt=0.0,
        le=5.0,
        description="penalty on tokens already seen (1.0: off; 1.1 curbs loops); llama_cpp and "
        "hf apply it, other backends ignore it",
    )
    prices: tuple[float, float] | None = Field(
        None, description="USD per million input and output tokens"
    )


_MODEL_PATH = (
    "llama_cpp: GGUF file (default: the bundled SmolLM2-135M-Instruct); hf: model directory or "
    "GGUF file; vllm: model directory or hub id in the local cache"
)


class FakeLLMConfig(LLMConfig):
    backend: Literal["fake"] = "fake"
    latency: float = Field(0.0, ge=0.0, description="simulated seconds per request")


class ReplayLLMConfig(LLMConfig):
    backend: Literal["replay"] = "replay"
    cassette: str | None = Field(
        None, description="run database to answer from ('package:NAME' for shipped ones)"
    )

    @model_validator(mode="after")
    def _needs_cassette(self) -> ReplayLLMConfig:
        if not self.cassette:
            raise ValueError(
                "backend 'replay' needs cassette (a run database path, or 'package:NAME' for a "
                "shipped cassette)"
            )
        return self


class OpenAILLMConfig(LLMConfig):
    backend: Literal["openai"] = "openai"
    base_url: str | list[str] | None = Field(
        None,
        description="OpenAI-compatible server URL, or a list of servers of the same model "
        "(requests go to the least loaded; a failing one is out for a while)",
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="env var holding the API key")
    timeout: float = Field(
        120.0,
        gt=0.0,
        allow_inf_nan=False,
        description="seconds one request attempt may take in all, from connecting to the last "
        "byte of the answer",
    )
    max_retries: int = Field(5, ge=0, description="retries on 429/5xx/timeouts")
    deadline: float = Field(
        300.0,
        gt=0.0,
        allow_inf_nan=False,
        description="seconds one call may take in all, attempts, retries and waits included",
    )
    max_retry_wait: float = Field(
        60.0,
        ge=0.0,
        allow_inf_nan=False,
        description="longest Retry-After honoured; a server asking for a longer wait fails the "
        "call",
    )

    endpoint_backoff: float = Field(
        5.0,
        ge=0.0,
        allow_inf_nan=False,
        description="with several base_url servers: seconds a failed one is out before it is "
        "tried again (doubling with each failure in a row, at most 120)",
    )

    @field_validator("base_url")
    @classmethod
    def _urls(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list):
            if not v:
                raise ValueError("give at least one server URL (or leave base_url out)")
            if len(set(v)) != len(v):
                raise ValueError("server URLs repeat; list each once")
            bad = [u for u in v if not u.startswith(("http://", "https://"))]
            if bad:
                raise ValueError(f"{bad[0]!r} is not an http:// or https:// URL")
        return v

    @model_validator(mode="after")
    def _needs_model(self) -> OpenAILLMConfig:
        if not self.model:
            raise ValueError("backend 'openai' needs model (the model name to request)")
        return self


class LlamaCppLLMConfig(LLMConfig):
    backend: Literal["llama_cpp"] = "llama_cpp"
    model_path: str | None = Field(None, description=_MODEL_PATH)
    lora: str | None = Field(
        None,
        description="GGUF LoRA adapter (`evolm finetune` writes DIR/adapter.gguf); 'shipped': "
        "the one evolm ships for the bundled model and the run's domain, if any; "
        "'package:NAME': a shipped one by name",
    )
    lora_scale: float = Field(1.0, ge=0.0, le=4.0, description="adapter strength")
    token_healing: bool = Field(
        True, description="let the model choose how a completion prompt's last token ends"
    )
    n_ctx: int | None = Field(
        None, ge=16, description="context tokens (default: the model's, at most 8192)"
    )
    n_threads: int | None = Field(None, ge=1, description="CPU threads (default: one per core)")
    prefix_cache_mb: float = Field(
        256.0,
        ge=0.0,
        allow_inf_nan=False,
        description="MB of earlier prompts' KV cache kept to resume from (0: only the last)",
    )


class HFLLMConfig(LLMConfig):
    backend: Literal["hf"] = "hf"
    model_path: str | None = Field(None, description=_MODEL_PATH)
    lora: str | None = Field(None, description="the peft adapter directory (DIR/adapter)")
    device: str | None = Field(
        None, description="torch device, e.g. cpu or cuda:0 (default: cuda if present)"
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="weight dtype"
    )
    quantization: Literal["8bit", "4bit"] | None = Field(
        None, description="load weights in 8 or 4 bits (needs bitsandbytes and a GPU)"
    )


class VLLMLLMConfig(LLMConfig):
    backend: Literal["vllm"] = "vllm"
    model_path: str | None = Field(None, description=_MODEL_PATH)
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="weight dtype"
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0.0, le=1.0, description="share of GPU memory for weights and KV cache"
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per model")

    @model_validator(mode="after")
    def _needs_model_path(self) -> VLLMLLMConfig:
        if not self.model_path:
            raise ValueError(
                "backend 'vllm' needs model_path (a model directory, or a hub id already in "
                "the local cache)"
            )
        return self


class CustomLLMConfig(LLMConfig):
    """A user backend: ``backend = "package.module:Class"`` (an ``LLMBackend`` subclass)."""

    backend: str = Field(..., description="'package.module:Class' of an LLMBackend subclass")
    params: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the backend class"
    )

    @model_validator(mode="after")
    def _loadable(self) -> CustomLLMConfig:
        from evolm.llm.build import BACKENDS

        BACKENDS.check_params(self.backend, self.params)
        return self


LLM_CONFIGS: dict[str, type[LLMConfig]] = {
    "fake": FakeLLMConfig,
    "replay": ReplayLLMConfig,
    "openai": OpenAILLMConfig,
    "llama_cpp": LlamaCppLLMConfig,
    "hf": HFLLMConfig,
    "vllm": VLLMLLMConfig,
}
"""The ``[llm]`` model of each built-in backend (the names of :data:`evolm.llm.build.BACKENDS`);
any other ``backend`` of the form ``package.module:Class`` uses :class:`CustomLLMConfig`."""

_CUSTOM = "package.module:Class"


def _tag(key: str, default: str, known: dict[str, Any]) -> Callable[[Any], str | None]:
    def tag(v: Any) -> str | None:
        value = v.get(key, default) if isinstance(v, dict) else getattr(v, key, None)
        if isinstance(value, str) and value not in known and is_import_path(value):
            return _CUSTOM
        return value if isinstance(value, str) else None

    return tag


_ANY_ARCHIVE = Annotated[
    Annotated[GridArchiveConfig, Tag("grid")]
    | Annotated[CVTArchiveConfig, Tag("cvt")]
    | Annotated[DeepGridArchiveConfig, Tag("deep_grid")]
    | Annotated[PopulationArchiveConfig, Tag("population")]
    | Annotated[BestOfNArchiveConfig, Tag("best_of_n")],
    Discriminator(
        _tag("kind", "grid", {}),
        custom_error_type="archive_kind",
        custom_error_message="unknown archive kind; choose one of " + ", ".join(ARCHIVE_CONFIGS),
    ),
]

_ANY_LLM = Annotated[
    Annotated[FakeLLMConfig, Tag("fake")]
    | Annotated[ReplayLLMConfig, Tag("replay")]
    | Annotated[OpenAILLMConfig, Tag("openai")]
    | Annotated[LlamaCppLLMConfig, Tag("llama_cpp")]
    | Annotated[HFLLMConfig, Tag("hf")]
    | Annotated[VLLMLLMConfig, Tag("vllm")]
    | Annotated[CustomLLMConfig, Tag(_CUSTOM)],
    Discriminator(
        _tag("backend", "fake", LLM_CONFIGS),
        custom_error_type="llm_backend",
        custom_error_message="unknown LLM backend; choose one of "
        + ", ".join(LLM_CONFIGS)
        + " or 'package.module:Class'",
    ),
]


class OperatorConfig(_Strict):
    kind: str = Field(
        "prompt_mutation",
        description="operator: a name in evolm.operators.OPERATORS or 'package.module:Class'",
    )
    name: str | None = Field(
        None, description="label in arms and `evolm status` (default: kind; must be unique)"
    )
    weight: float = Field(1.0, ge=0.0, description="relative share in a fixed mix")
    params: dict[str, Any] = Field(
        default_factory=dict, description="operator parameters (checked against its kind)"
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        from evolm.operators import OPERATORS

        OPERATORS.get(v)
        return v

    @model_validator(mode="after")
    def _known_params(self) -> OperatorConfig:
        from evolm.operators import OPERATORS

        OPERATORS.check_params(self.kind, self.params)
        return self


class BanditConfig(_Strict):
    kind: str = Field(
        "fixed",
        description="how each prompt's (operator, model) arm is chosen: a fixed weighted mix, "
        "UCB1 or Thompson sampling (or 'package.module:Class'), rewarded by archive insertions",
    )
    c: float = Field(1.4142135623730951, ge=0.0, description="UCB1 exploration constant")
    prior: tuple[float, float] = Field(
        (1.0, 1.0), description="Thompson Beta(a, b) prior of each arm's insertion rate"
    )
    cost_aware: bool = Field(
        False, description="reward insertions per unit cost (USD with llm prices, else tokens)"
    )
    window: int | None = Field(
        None, ge=1, description="only the last this many batches of rewards count"
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        from evolm.operators.bandit import SELECTORS

        SELECTORS.get(v)
        return v

    @field_validator("prior")
    @classmethod
    def _prior_positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not (v[0] > 0 and v[1] > 0):
            raise ValueError("both Beta prior parameters must be > 0")
        return v


class EngineConfig(_Strict):
    batch_size: int = Field(8, ge=1, description="candidates asked per batch")
    pipeline_depth: int = Field(
        2, ge=1, le=64, description="batches in flight (overlaps LLM sampling and evaluation)"
    )
    workers: int = Field(0, ge=0, description="evaluation workers (0: one per core)")
    eval_timeout: float | None = Field(
        None,
        gt=0.0,
        allow_inf_nan=False,
        description="seconds per evaluation, a finite number > 0 (default: the domain's)",
    )
    memory_mb: int | None = Field(1024, ge=64, description="address-space limit per worker")
    sandbox: Literal["auto", "bwrap", "userns", "landlock", "weak"] = Field(
        "auto",
        description="evaluation jail tier (auto: the strongest that works here; `evolm doctor`)",
    )
    allow_weak_sandbox: bool = Field(
        False,
        description="allow running without Landlock (the 'weak' tier) when nothing else works",
    )
    init_batches: int = Field(
        2, ge=0, description="batches whose parents are drawn from the seeds (ELM's init phase)"
    )
    llm_deadline: float = Field(
        600.0, gt=0.0, description="seconds the engine waits for any LLM batch"
    )
    evaluator: str = Field(
        "sandbox",
        description="where programs run: sandbox (the local pool) or ray[:ADDRESS] (a pool on "
        "every node of a Ray cluster; docs/distributed.md)",
    )

    @field_validator("evaluator")
    @classmethod
    def _evaluator_spec(cls, v: str) -> str:
        if v == "sandbox" or v == "ray" or (v.startswith("ray:") and len(v) > 4):
            return v
        raise ValueError(
            f"unknown evaluator {v!r}: use sandbox (the local pool), ray (Ray's default "
            "cluster) or ray:ADDRESS (e.g. ray:10.0.0.5:6379)"
        )


class BudgetConfig(_Strict):
    llm_calls: int | None = Field(None, ge=0, description="stop after this many LLM calls")
    tokens: int | None = Field(None, ge=0, description="stop after this many tokens (in + out)")
    evaluations: int | None = Field(None, ge=0, description="stop after this many evaluations")
    wall_time: float | None = Field(None, gt=0, description="stop after this many seconds")
    cost: float | None = Field(None, ge=0, description="stop after this many USD")
    target_fitness: float | None = Field(None, description="stop once max fitness reaches it")

    def unlimited(self) -> bool:
        return (
            all(
                v is None
                for v in (self.llm_calls, self.tokens, self.evaluations, self.wall_time, self.cost)
            )
            and self.target_fitness is None
        )


class FinetuneConfig(_Strict):
    """Fine-tuning rounds inside a run (ELM section 4): the mutation model is trained on the
    mutations the run accepted, and the run goes on with the new adapter."""

    every: int = Field(
        ...,
        ge=1,
        description="train a round each time this many new mutations (seeds excluded) entered "
        "the archive (NEW or IMPROVED) since the last round",
    )
    max_rounds: int = Field(2, ge=1, description="the most rounds in a run (failed ones count)")
    accept: Literal["inserted", "improved", "valid"] = Field(
        "inserted",
        description="which children become training examples: inserted in the archive, "
        "inserted and fitter than their parent, or every child that ran",
    )
    format: Literal["full", "elm_diff", "search_replace", "line", "stored"] = Field(
        "full",
        description="example format: the prompt_mutation, elm_diff, search_replace or line_edit "
        "operator's prompt re-rendered, or the stored prompt and answer",
    )
    bootstrap: list[str] = Field(
        default_factory=list,
        description="more run databases whose accepted mutations join every round's data "
        "(e.g. a cheap GP run of the same domain)",
    )
    trainer: str = Field(
        "lora",
        description="'lora' (peft, exported to GGUF for llama_cpp) or 'package.module:callable'",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="trainer parameters (lora: rank, alpha, lr, epochs, max_steps, batch_size, "
        "max_len, ..., val_fraction, split_by, seed)",
    )

    @field_validator("trainer")
    @classmethod
    def _trainer_form(cls, v: str) -> str:
        module, sep, attr = v.partition(":")
        if v != "lora" and not (sep and module and attr):
            raise ValueError(f"trainer must be 'lora' or 'package.module:callable', got {v!r}")
        return v

    @field_validator("params")
    @classmethod
    def _lora_params(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if info.data.get("trainer") == "lora":
            from evolm.finetune.loop import lora_params

            lora_params(v)
        return v


class RunConfig(_Strict):
    seed: int = Field(0, ge=0, description="master seed of the run")
    domain: DomainConfig = Field(default_factory=DomainConfig)
    archive: _ANY_ARCHIVE = Field(default_factory=GridArchiveConfig)
    llm: _ANY_LLM = Field(default_factory=FakeLLMConfig)
    operator: OperatorConfig = Field(default_factory=OperatorConfig)
    operators: list[OperatorConfig] = Field(
        default_factory=list, description="a mix of operators; when given, replaces `operator`"
    )
    models: list[_ANY_LLM] = Field(
        default_factory=list,
        description="more models besides `llm`; every LLM operator is paired with every model",
    )
    judge: _ANY_LLM | None = Field(
        None,
        description="the model that scores an LLM-scored domain's texts (same keys as [llm]); "
        "default: the run's [llm] model itself",
    )
    bandit: BanditConfig = Field(default_factory=BanditConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    finetune: FinetuneConfig | None = Field(
        None, description="fine-tuning rounds inside the run (none when absent)"
    )

    @model_validator(mode="before")
    @classmethod
    def _legacy_flat_sections(cls, data: Any) -> Any:
        """Configurations stored by evolm before ``[archive]`` and ``[llm]`` became one model per
        kind list every kind's keys; keep the ones the chosen kind takes."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        if isinstance(out.get("archive"), dict):
            out["archive"] = _strip_legacy(out["archive"], "kind", "grid", _LEGACY_ARCHIVE)
        if isinstance(out.get("llm"), dict):
            out["llm"] = _strip_legacy(out["llm"], "backend", "fake", _LEGACY_LLM)
        if isinstance(out.get("models"), list):
            out["models"] = [
                _strip_legacy(m, "backend", "fake", _LEGACY_LLM) if isinstance(m, dict) else m
                for m in out["models"]
            ]
        return out

    @model_validator(mode="after")
    def _unique_labels(self) -> RunConfig:
        for i, m in enumerate(self.models):
            if m.samples_per_prompt != 1:
                raise ValueError(
                    f"models.{i}.samples_per_prompt: only [llm].samples_per_prompt applies "
                    "(to every model); remove it from [[models]]"
                )
        labels = [o.name or o.kind for o in self.operator_list()]
        repeated = sorted({x for x in labels if labels.count(x) > 1})
        if repeated:
            raise ValueError(
                f"operator labels repeat ({', '.join(repeated)}); give each operator of the same "
                "kind its own `name`"
            )
        if self.operators and sum(o.weight for o in self.operators) <= 0:
            raise ValueError("operator weights must not all be zero")
        return self

    def operator_list(self) -> list[OperatorConfig]:
        """The operators of the run: ``operators`` if given, else the single ``operator``."""
        return list(self.operators) or [self.operator]

    def model_list(self) -> list[LLMConfig]:
        """The models of the run: ``llm`` first, then ``models``."""
        return [self.llm, *self.models]

    def cost_in_usd(self) -> bool:
        """Whether costs are counted in USD (some model has ``prices``) rather than tokens."""
        return any(m.prices is not None for m in self.model_list())


_LEGACY_ARCHIVE = frozenset(
    {"kind", "bins", "cells", "per_cell", "size", "tournament_size", "selection", "qd_offset"}
)
_LLM_KEYS_SINCE_FLAT = frozenset(
    {"deadline", "max_retry_wait", "endpoint_backoff", "prefix_cache_mb"}
)
"""``[llm]`` keys added after the flat form was retired: a stored flat section never holds them,
so they must not count towards recognising one (add every new backend key here)."""
_LEGACY_LLM = (
    frozenset(
        {
            *LLMConfig.model_fields,
            *(k for c in LLM_CONFIGS.values() for k in c.model_fields),
        }
    )
    - _LLM_KEYS_SINCE_FLAT
)
_SWITCHES: dict[str, tuple[str, str, type[BaseModel]]] = {
    "archive": ("kind", "grid", ArchiveConfig),
    "llm": ("backend", "fake", LLMConfig),
}


def _strip_legacy(
    section: dict[str, Any], key: str, default: str, legacy: frozenset[str]
) -> dict[str, Any]:
    """A section stored in the old flat form (every kind's keys) cut to its kind's keys."""
    if not legacy <= set(section):
        return section
    models = ARCHIVE_CONFIGS if key == "kind" else LLM_CONFIGS
    model = models.get(section.get(key, default))
    if model is None:
        return section
    return {k: v for k, v in section.items() if k in model.model_fields}


def _where(loc: tuple[int | str, ...]) -> tuple[str, str | None]:
    """A dotted key without the union tag pydantic puts in it, and the tag (the kind)."""
    at = 1 if loc[:1] in (("archive",), ("llm",)) else 2 if loc[:1] == ("models",) else None
    tags = (*ARCHIVE_CONFIGS, *LLM_CONFIGS, _CUSTOM) if loc[:1] != ("archive",) else ARCHIVE_CONFIGS
    if at is None or len(loc) <= at or loc[at] not in tags:
        return ".".join(str(p) for p in loc), None
    tag = str(loc[at])
    return ".".join(str(p) for i, p in enumerate(loc) if i != at), tag


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem: the dotted key, what was given and what is allowed; a key that
    does not apply to the chosen archive kind or LLM backend says so."""
    lines = []
    for err in exc.errors():
        key, kind = _where(tuple(err["loc"]))
        key = key or "(whole configuration)"
        given = err.get("input")
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] in ("archive_kind", "llm_backend"):  # the union's tag names no kind
            field = "kind" if err["type"] == "archive_kind" else "backend"
            key = f"{key}.{field}"
            given = given.get(field) if isinstance(given, dict) else given
        if err["type"] == "extra_forbidden" and kind is not None:
            field = "kind" if key.startswith("archive") else "backend"
            what = "archive kind" if field == "kind" else "LLM backend"
            msg = f"not a setting of {what} {kind!r} (remove it, or change {field})"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `evolm run --help` lists the options)"
        lines.append(f"  {key}: {msg} (given: {given!r})")
    return "invalid configuration:\n" + "\n".join(lines)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        switch = _SWITCHES.get(k)
        if switch and isinstance(v, dict) and isinstance(out.get(k), dict):
            key, default, common = switch
            if v.get(key, out[k].get(key, default)) != out[k].get(key, default):
                # another kind: the old kind's own settings do not apply to it
                out[k] = {n: x for n, x in out[k].items() if n in common.model_fields}
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "params":
            out[k] = _merge(out[k], v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def list_presets() -> list[str]:
    root = resources.files("evolm.presets")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> dict[str, Any]:
    """The raw table of a shipped preset.

    Raises:
        ConfigError: no preset of that name (the message lists the shipped ones).
    """
    res = resources.files("evolm.presets").joinpath(f"{name}.toml")
    if not res.is_file():
        raise ConfigError(f"unknown preset {name!r}; shipped presets: {', '.join(list_presets())}")
    return tomllib.loads(res.read_text())


def _read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"config file {p} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at line "
            f"{line} cannot be decoded): TOML files must be UTF-8. Re-save it as UTF-8 (e.g. "
            f"iconv -f latin1 -t utf-8 {p})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {p} cannot be read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` settings (the CLI's ``--set``) as a nested override dict: ``KEY`` is a
    dotted path into the config (``domain.params.puzzle``), ``VALUE`` a TOML value (``3``,
    ``0.5``, ``true``, ``[1, 2]``, ``"text"``) or, when it does not parse as one, a plain
    string (``two_sum``).

    Raises:
        ConfigError: an item without ``=``, an empty key part, or a key set twice or both as a
            value and as a table.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ConfigError(
                f"--set {item!r}: write KEY=VALUE with a dotted KEY, e.g. "
                "--set domain.params.puzzle=two_sum or --set llm.temperature=0.5"
            )
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part.strip(), {})
            if not isinstance(node, dict):
                raise ConfigError(
                    f"--set {item!r}: {key.strip()} is set both as a value and a table"
                )
        last = parts[-1].strip()
        if last in node:
            raise ConfigError(f"--set {item!r}: {key.strip()} is set twice (or as a table too)")
        node[last] = value
    return out


def load_config(
    *,
    preset: str | None = None,
    file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    assignments: list[str] | None = None,
) -> RunConfig:
    """Merge preset, file, overrides and ``KEY=VALUE`` ``assignments`` (the CLI's ``--set``,
    see :func:`parse_assignments`), later wins, and validate.

    Raises:
        ConfigError: unknown preset, unreadable file, or invalid values (every problem listed).
    """
    data: dict[str, Any] = {}
    if preset:
        data = _merge(data, load_preset(preset))
    if file:
        data = _merge(data, _read_toml(file))
    if overrides:
        data = _merge(data, overrides)
    if assignments:
        data = _merge(data, parse_assignments(assignments))
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc
