"""Fine-tuning rounds inside a run: ELM's self-improving mutation operator (Lehman et al. 2022,
section 4 and Fig. 11).

**When a round is due.** Every told batch adds its *accepted mutations* (children, seeds
excluded, whose archive add status is NEW or IMPROVED, whatever wrote them: an LLM or GP) to a
counter. Once the counter reaches ``finetune.every`` and fewer than ``max_rounds`` rounds ran
(failed ones included), a round is due. :class:`RoundSchedule` holds this state; it is a pure
function of the per-batch counts, so a resumed run rebuilds it from the stored ``step`` events.

**The drain.** From the batch that made the round due, the engine asks nothing new. The batches
already in flight finish and are told in order, as usual (their accepted mutations join the
round's data). With nothing in flight, the round runs; then the pipeline restarts as after the
seed batch: the next ``pipeline_depth`` batches are asked at once. Batch ``k``'s random generator
stays ``[seed, k]``, so the archive is still a pure function of the seed and the LLM's answers.

**The round.** The trainer (:class:`Trainer`) gets the run database and the ``bootstrap``
databases, an output directory ``<RUN.db>.rounds/round-<n>/``, the round number and the
``[finetune]`` configuration, and returns a :class:`RoundResult`: the adapter file (or None) and a
metrics dict. ``"lora"`` is :func:`lora_trainer`; ``"package.module:callable"`` names your own.
Each round trains a fresh adapter on the base model from all the data so far (the run's accepted
mutations up to the round, and the bootstrap runs'), so round ``n`` replaces round ``n - 1``.
It runs in a daemon thread, so the event loop stays responsive, a Ctrl-C during a round does not
wait for the training to end (the unfinished round is run again on resume), and the wall-time
budget also bounds a round. A trainer that raises is recorded as a failed round, with the error
text, and the run goes on with the model it had.

**Applying the adapter.** Every ``llama_cpp`` model of the run whose ``model_path`` is the base
the adapter was trained on (:func:`adapter_targets`) is rebuilt with ``lora = <adapter>`` and
replaces the old backend in every arm. Other backends keep answering as before; the event says
the adapter was trained but not applied.

**What is recorded.** One ``finetune_round`` event per round, with ``batch`` = the last batch told
before the round: round number, status (``ok`` or ``failed``) and error, the batch that made it
due, the accepted mutations it counted, the period's per-arm stats (chosen, parsed, valid,
inserted, cost), the databases, the output directory, the adapter with its sha256, the examples
(train, val) and the trainer's metrics, the round's seconds, and which models took the adapter.
:func:`period_rows` turns the events into ELM Fig. 11's per-round view (``evolm status``).

**Resume and replay.** A stored ``finetune_round`` event after batch ``d`` means the live run
drained, trained after telling ``d`` and then asked ``d + 1 .. d + depth``; the rebuild replays
exactly that. Recorded rounds are never trained again: the latest successful round's adapter is
reloaded, and a missing or changed adapter file stops the resume with a message naming it. A
round in progress at a crash left no event and runs again. With the ``replay`` backend the answers
come from the cassette, so the adapter cannot change them; the configured trainer still runs, at
the same batches, so the replayed run's events (and, for a deterministic trainer, its adapters'
sha256) match the recorded run's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import importlib
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from evolm.config import ConfigError, FinetuneConfig, LlamaCppLLMConfig, LLMConfig, RunConfig
from evolm.events import FinetuneRoundEvent
from evolm.store import RunStore, StoreError

if TYPE_CHECKING:
    from evolm.llm.base import LLMBackend

__all__ = [
    "AdapterMissing",
    "FinetuneLoop",
    "RoundOutcome",
    "RoundResult",
    "RoundSchedule",
    "Trainer",
    "adapter_targets",
    "base_model",
    "load_trainer",
    "lora_params",
    "lora_trainer",
    "period_rows",
    "rounds_dir",
    "sha256_of",
    "swap_adapter",
]

EVENT = FinetuneRoundEvent.kind
_DATA_KEYS = ("val_fraction", "split_by")
T = TypeVar("T")


@dataclass(frozen=True)
class RoundResult:
    """What a trainer returns.

    Attributes:
        adapter: the adapter file (a GGUF LoRA for llama_cpp), or None when there is none.
        metrics: JSON-able numbers. ``evolm status`` shows ``train_examples``, ``val_examples``,
            ``val_loss_before``, ``val_loss_after``, ``seconds`` and ``tokens_per_s`` if present.
    """

    adapter: Path | None
    metrics: dict[str, Any] = field(default_factory=dict)


class Trainer(Protocol):
    """``trainer(db_paths, out_dir, round, config) -> RoundResult``: train one round.

    ``db_paths`` are the run's database then the bootstrap ones (read them read-only);
    ``out_dir`` exists and is this round's own; ``round`` counts from 1.
    """

    def __call__(
        self, db_paths: list[Path], out_dir: Path, round: int, config: FinetuneConfig
    ) -> RoundResult: ...


class AdapterMissing(StoreError):
    """A recorded round's adapter file is gone or changed, so the run cannot resume as it was."""


# -- the "lora" trainer -----------------------------------------------------------------------
def lora_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``finetune.params`` into :func:`~evolm.finetune.dataset.build_dataset` keyword
    arguments (``val_fraction``, ``split_by``, ``seed``) and
    :class:`~evolm.finetune.train.TrainConfig` fields, and check both.

    Raises:
        ValueError: an unknown key or a bad value (the message names it).
    """
    from evolm.finetune.dataset import SPLITS
    from evolm.finetune.train import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(params) - fields - set(_DATA_KEYS))
    if unknown:
        known = ", ".join(sorted(fields | set(_DATA_KEYS)))
        raise ValueError(f"unknown lora parameter(s) {', '.join(unknown)}; known: {known}")
    data = {k: params[k] for k in (*_DATA_KEYS, "seed") if k in params}
    train = {k: v for k, v in params.items() if k in fields}
    if isinstance(train.get("target_modules"), list):
        train["target_modules"] = tuple(train["target_modules"])
    try:
        TrainConfig(**train)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad lora parameter: {exc}") from exc
    if data.get("split_by", "lineage") not in SPLITS:
        raise ValueError(f"split_by must be one of {', '.join(SPLITS)}, got {data['split_by']!r}")
    fraction = data.get("val_fraction", 0.1)
    if not (isinstance(fraction, int | float) and 0 <= fraction < 1):
        raise ValueError(f"val_fraction must be a number in [0, 1), got {fraction!r}")
    return data, train


def lora_trainer(
    db_paths: list[Path],
    out_dir: Path,
    round: int,
    config: FinetuneConfig,
    base_gguf: Path | None,
) -> RoundResult:
    """The ``"lora"`` trainer: :func:`~evolm.finetune.dataset.build_dataset` with the round's
    ``accept`` and ``format``, then :func:`~evolm.finetune.train.train_lora` on ``base_gguf``
    (None: the bundled SmolLM2 GGUF) into ``out_dir``.

    Returns:
        The GGUF adapter (None when the base cannot be exported) and the training metrics, with
        the dataset's counts under ``dataset``.

    Raises:
        evolm.finetune.dataset.DatasetError, evolm.finetune.train.TrainError: as those do
            (an empty dataset, a missing package, a base model that cannot be loaded).
    """
    from evolm.finetune.dataset import build_dataset
    from evolm.finetune.train import TrainConfig, train_lora

    data, train = lora_params(config.params)
    dataset = build_dataset(db_paths, accept=config.accept, format=config.format, **data)
    result = train_lora(dataset, out_dir, base=base_gguf, config=TrainConfig(**train))
    metrics = {k: v for k, v in result.metrics.to_dict().items() if k != "losses"}
    metrics["dataset"] = dataset.counts.to_dict()
    if result.card.get("gguf_error"):
        metrics["gguf_error"] = result.card["gguf_error"]
    return RoundResult(result.gguf, metrics)


def load_trainer(config: FinetuneConfig, base: Path | None) -> Trainer:
    """The trainer ``config.trainer`` names; ``base`` is the base model of ``"lora"``.

    Raises:
        ConfigError: a ``package.module:callable`` that cannot be imported or is not callable.
    """
    if config.trainer == "lora":

        def lora(
            db_paths: list[Path], out_dir: Path, round: int, config: FinetuneConfig
        ) -> RoundResult:
            return lora_trainer(db_paths, out_dir, round, config, base)

        return lora
    module, _, attr = config.trainer.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"finetune.trainer: cannot load {config.trainer!r} ({exc}); use "
            "'package.module:callable' with the module importable from the run's working directory"
        ) from exc
    if not callable(fn):
        raise ConfigError(f"finetune.trainer: {config.trainer!r} is not callable")
    trainer: Trainer = fn
    return trainer


# -- which models take the adapter ------------------------------------------------------------
def base_model(config: RunConfig) -> str | None:
    """The base model rounds train on: the ``model_path`` of the run's first llama_cpp model
    (else of ``llm``); None is the bundled SmolLM2 GGUF."""
    for m in config.model_list():
        if isinstance(m, LlamaCppLLMConfig):
            return m.model_path
    return getattr(config.llm, "model_path", None)


def adapter_targets(config: RunConfig) -> list[int]:
    """Indices in ``config.model_list()`` of the models a round's adapter is loaded into: the
    llama_cpp models that run the base model it was trained on."""
    base = base_model(config)
    return [
        i
        for i, m in enumerate(config.model_list())
        if isinstance(m, LlamaCppLLMConfig) and m.model_path == base
    ]


def _label(m: LLMConfig) -> str:
    return m.name or m.model or getattr(m, "model_path", None) or f"{m.backend} (bundled model)"


def swap_adapter(
    config: RunConfig,
    adapter: Path,
    build: Callable[[RunConfig, LLMConfig], LLMBackend],
) -> tuple[dict[int, LLMBackend], list[str], str]:
    """New backends that load ``adapter``, by model index, the models' labels, and a note for
    the event (which models did not take it, and why).

    Raises:
        evolm.llm.LLMError, ValueError: a backend cannot be built (as ``build`` raises).
    """
    models = config.model_list()
    targets = adapter_targets(config)
    built = {i: build(config, models[i].model_copy(update={"lora": str(adapter)})) for i in targets}
    others = [f"{_label(m)} ({m.backend})" for i, m in enumerate(models) if i not in targets]
    notes = []
    if targets:
        notes.append("loaded into " + ", ".join(_label(models[i]) for i in targets))
    if others:
        notes.append(
            "trained but not applied to "
            + ", ".join(others)
            + ": only llama_cpp models of the base it was trained on load a GGUF adapter"
        )
    return built, [_label(models[i]) for i in targets], "; ".join(notes)


# -- when rounds happen -----------------------------------------------------------------------
@dataclass
class RoundSchedule:
    """Counts accepted mutations and says when a round is due (module docstring).

    Attributes:
        rounds: rounds run so far, failed ones included.
        accepted: accepted mutations since the last round.
        trigger: the batch whose telling made the round due, or None when none is due.
        last_round_batch: the batch the last round followed (the pipeline restarted after it).
        period_start: the first batch of the current period.
        period_arms: per-arm stats summed over the current period.
    """

    every: int
    max_rounds: int
    rounds: int = 0
    accepted: int = 0
    trigger: int | None = None
    last_round_batch: int | None = None
    period_start: int = 1
    period_arms: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def due(self) -> bool:
        return self.trigger is not None

    def told(self, batch: int, accepted: int, arms: Mapping[str, Mapping[str, float]]) -> None:
        """Count a told batch (``accepted``: its children that entered the archive)."""
        self.accepted += accepted
        for label, row in arms.items():
            acc = self.period_arms.setdefault(label, {})
            for key, value in row.items():
                acc[key] = acc.get(key, 0) + value
        if self.trigger is None and self.rounds < self.max_rounds and self.accepted >= self.every:
            self.trigger = batch

    def finish(self, batch: int) -> None:
        """A round ran (or failed) after batch ``batch``: start a new period."""
        self.rounds += 1
        self.accepted = 0
        self.trigger = None
        self.last_round_batch = batch
        self.period_start = batch + 1
        self.period_arms = {}


# -- running a round --------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundOutcome:
    """One round's result before it is recorded (``result`` is None when it failed)."""

    round: int
    after_batch: int
    out_dir: Path
    result: RoundResult | None
    error: str | None
    seconds: float
    sha256: str | None = None

    @property
    def adapter(self) -> Path | None:
        return None if self.result is None else self.result.adapter


def rounds_dir(db_path: Path) -> Path:
    """Where the rounds of the run in ``db_path`` write: ``<RUN.db>.rounds``."""
    return db_path.with_name(db_path.name + ".rounds")


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, sorted)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    """Metrics as strict JSON: non-finite floats become None, unknown objects their repr."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy and torch scalars
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def _in_daemon_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """Run ``fn`` (which must not raise) in a daemon thread; its result resolves the future.

    Not ``asyncio.to_thread``: executor threads are joined when the loop and the interpreter
    shut down, so an interrupted run would wait for the training to end. A daemon thread is
    abandoned instead; cancelling the future only stops waiting.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T) -> None:
        if not future.done():
            future.set_result(value)

    def work() -> None:
        value = fn()
        with contextlib.suppress(RuntimeError):  # the loop has closed: the round was abandoned
            loop.call_soon_threadsafe(settle, value)

    threading.Thread(target=work, name="evolm-finetune", daemon=True).start()
    return future


class FinetuneLoop:
    """The rounds of one run: the schedule, the trainer, and the events.

    Args:
        config: the run's configuration (``config.finetune`` must be set).
        db_path: the run database.

    Raises:
        ConfigError: a bootstrap database does not exist, or the trainer cannot be loaded.
    """

    def __init__(self, config: RunConfig, db_path: Path) -> None:
        ft = config.finetune
        if ft is None:
            raise ValueError("FinetuneLoop needs config.finetune")
        self.config = ft
        self.schedule = RoundSchedule(ft.every, ft.max_rounds)
        missing = [p for p in ft.bootstrap if not Path(p).is_file()]
        if missing:
            raise ConfigError(
                f"finetune.bootstrap: run database {missing[0]} does not exist (paths are "
                "relative to the working directory)"
            )
        self.databases = [db_path.resolve(), *(Path(p).resolve() for p in ft.bootstrap)]
        self.rounds_dir = rounds_dir(db_path.resolve())
        base = base_model(config)
        self.trainer = load_trainer(ft, Path(base) if base else None)
        self.takes_adapter = bool(adapter_targets(config))
        self._recorded: dict[int, FinetuneRoundEvent] = {}

    # -- live ---------------------------------------------------------------------------------
    def start(self, after_batch: int) -> asyncio.Future[RoundOutcome]:
        """Start the due round in a daemon thread (it never raises: failures are outcomes)."""
        n = self.schedule.rounds + 1
        return _in_daemon_thread(lambda: self._train(n, after_batch))

    def _train(self, n: int, after_batch: int) -> RoundOutcome:
        out = self.rounds_dir / f"round-{n}"
        t0 = time.monotonic()
        try:
            out.mkdir(parents=True, exist_ok=True)
            result = self.trainer(list(self.databases), out, n, self.config)
            if not isinstance(result, RoundResult):
                raise TypeError(f"the trainer returned {type(result).__name__}, not a RoundResult")
            sha = None
            if result.adapter is not None:
                adapter = Path(result.adapter).resolve()
                if not adapter.exists():
                    raise FileNotFoundError(f"the trainer's adapter {adapter} does not exist")
                result = dataclasses.replace(result, adapter=adapter)
                sha = sha256_of(adapter)
        except Exception as exc:
            return RoundOutcome(
                n, after_batch, out, None, f"{type(exc).__name__}: {exc}", time.monotonic() - t0
            )
        return RoundOutcome(n, after_batch, out, result, None, time.monotonic() - t0, sha)

    def record(
        self, store: RunStore, outcome: RoundOutcome, applied: Sequence[str], note: str
    ) -> dict[str, Any]:
        """Store the round's event and start the next period; returns the payload."""
        s = self.schedule
        metrics = _jsonable(outcome.result.metrics) if outcome.result is not None else {}
        if outcome.error is not None:
            note = "round failed; the run goes on with the model it had"
        elif outcome.adapter is None:
            note = "the trainer returned no adapter; the run goes on with the model it had"
        event = FinetuneRoundEvent(
            batch=outcome.after_batch,
            round=outcome.round,
            status="failed" if outcome.error is not None else "ok",
            error=outcome.error,
            trigger_batch=s.trigger,
            accepted=s.accepted,
            period={"from_batch": s.period_start, "to_batch": outcome.after_batch},
            arms=s.period_arms,
            databases=tuple(str(p) for p in self.databases),
            out_dir=str(outcome.out_dir),
            adapter=None if outcome.adapter is None else str(outcome.adapter),
            adapter_sha256=outcome.sha256,
            examples={
                "train": metrics.get("train_examples"),
                "val": metrics.get("val_examples"),
            },
            metrics=metrics,
            seconds=outcome.seconds,
            applied=tuple(applied),
            note=note,
        )
        store.record(event)
        payload = event.to_payload()
        s.finish(outcome.after_batch)
        return payload

    # -- resume -------------------------------------------------------------------------------
    def resume(self, store: RunStore, last_batch: int) -> Path | None:
        """Read the recorded rounds (up to ``last_batch``) for :meth:`replay_told`; return the
        adapter to reload (the latest successful round's, when a model takes it).

        Raises:
            AdapterMissing: that adapter file is gone or its sha256 changed (checked before the
                resume changes anything).
        """
        self._recorded = {r.batch: r for r in store.finetune_rounds(max_batch=last_batch)}
        done = [r for _, r in sorted(self._recorded.items()) if r.ok and r.adapter]
        if not done or not self.takes_adapter:
            return None
        latest = done[-1]
        assert latest.adapter is not None
        path = Path(latest.adapter)
        # a run directory moved with its database: the same file next to the database now
        moved = self.rounds_dir / f"round-{latest.round}" / path.name
        for candidate in (path, moved):
            if candidate.is_file() and sha256_of(candidate) == latest.adapter_sha256:
                return candidate
        fix = (
            f"restore that file (sha256 {latest.adapter_sha256}) and resume again; the run "
            "cannot go on with the model it was using without it"
        )
        problem = "has changed" if path.exists() else "is missing"
        raise AdapterMissing(f"round {latest.round}'s adapter {path} {problem}: {fix}")

    def replay_told(
        self, batch: int, accepted: int, arms: Mapping[str, Mapping[str, float]], path: Path
    ) -> None:
        """Rebuild the schedule as the live run had it after telling ``batch``, finishing the
        round recorded after it, if any.

        Raises:
            StoreError: a recorded round where the run's counts call for none.
        """
        self.schedule.told(batch, accepted, arms)
        event = self._recorded.get(batch)
        if event is None:
            return
        if not self.schedule.due or event.round != self.schedule.rounds + 1:
            raise StoreError(
                f"{path}: round {event.round} is recorded after batch {batch}, where the "
                "run's counts call for none; the database does not match its configuration"
            )
        self.schedule.finish(batch)


# -- the per-round view (ELM Fig. 11) ---------------------------------------------------------
def period_rows(store: RunStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """ELM Fig. 11 by period (before round 1, after round 1, ...), and the rounds themselves.

    Each period row has ``period``, ``batches`` (first, last), ``candidates``, ``llm_calls``,
    ``parsed``, ``valid``, ``inserted`` (summed over the arms), and ``elites`` and
    ``qd_score`` at the period's end. Each round row is the event's payload with ``batch``.
    Both lists are empty for a run without rounds.
    """
    rounds = [{**r.to_payload(), "batch": r.batch} for r in store.finetune_rounds()]
    if not rounds:
        return [], []
    bounds = [int(r["batch"]) for r in rounds]
    counts = dict.fromkeys(("candidates", "llm_calls", "parsed", "valid", "inserted"), 0)
    rows: list[dict[str, Any]] = [
        {"period": "before round 1" if i == 0 else f"after round {i}", "batches": None,
         **counts, "elites": None, "qd_score": None}
        for i in range(len(bounds) + 1)
    ]  # fmt: skip
    calls_before = 0
    for step in store.steps():
        batch = step.batch
        row = rows[sum(b < batch for b in bounds)]
        if batch > 0:
            first = row["batches"][0] if row["batches"] else batch
            row["batches"] = (first, batch)
            for arm in step.arms.values():
                row["candidates"] += int(arm.get("chosen", 0))
                for key in ("parsed", "valid", "inserted"):
                    row[key] += int(arm.get(key, 0))
        row["llm_calls"] += step.llm_calls - calls_before
        calls_before = step.llm_calls
        row["elites"], row["qd_score"] = step.elites, step.qd_score
    return rows, rounds
