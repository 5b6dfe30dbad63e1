"""Experiments: several configurations ("arms") run side by side over seeds at one equal budget,
with built-in baselines, each run stored in its own run database (``evolm compare``).

An arm is written ``NAME=SPEC``. ``SPEC`` is a list of items separated by ``;``:
``preset:NAME`` (a shipped preset, at most one), ``config:FILE.toml`` (a config file, merged in
order) and ``KEY=VALUE`` (a ``--set`` assignment: a dotted key and a TOML value). A ``;`` inside
quotes or brackets belongs to the value. ``NAME=`` alone is the common configuration. An arm's
configuration is merged in this order, later wins: its preset (else ``--preset``, else the
domain's own preset), its config files, the domain, ``--llm``, the common ``--set``
assignments, its own assignments; then the seed and the comparison's budget replace whatever
those said (an arm cannot set ``seed`` or ``budget``: budgets are the comparison's, equal for
all).

Baselines are derived from the *first* arm, so each differs from it in one respect:
``best-of-n`` (archive kind best_of_n: every parent is a seed, nothing breeds from offspring;
same LLM budget), ``ga`` (a GA population of the same operators, tournament selection), ``gp``
(the GP operator on the same archive, no LLM, at the evaluations the first arm's run of the same
seed counted) and ``random`` (random search: the ``random`` operator, which samples the domain's
``random_program(rng)`` with no parents and no LLM, on the same archive at the same matched
evaluations as ``gp``; skipped when the domain has no generator: image, parity and sodarace
have one).

Each run is ``OUT/<label>-seed<N>.db`` and records an ``experiment`` event (batch NULL) before
it begins: ``{"label", "spec", "seed", "budget", "baseline", "reference"}``; runs that differ
only by seed share the label. A second call with the same ``OUT`` skips finished runs, resumes
interrupted ones, and refuses a file that holds a run of another configuration.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evolm.comparison import ReferenceGrid, format_table, measure_run, ratios, summarise
from evolm.config import ConfigError, RunConfig

__all__ = [
    "BASELINES",
    "EVENT_KIND",
    "ArmSpec",
    "Experiment",
    "ExperimentBudget",
    "PlannedRun",
    "check_budget",
    "compare_runs",
    "execute_run",
    "measure_and_check",
    "parse_arm",
    "plan_runs",
    "reference_grid",
    "run_experiment",
    "run_state",
]

BASELINES = ("best-of-n", "ga", "gp", "random")
"""The built-in baselines, by the label their runs get."""

EVENT_KIND = "experiment"
"""The kind of the event that labels a run of an experiment."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_BUDGET_KEYS = ("llm_calls", "evaluations", "tokens")
_EXAMPLE = "e.g. --arm 'rewrite=preset:embedded;operators=[{kind=\"rewrite\"}]'"
NO_RANDOM = (
    "random search skipped: the domain {domain} has no random program generator (a "
    "`random_program(rng)` method; image, parity and sodarace have one, and a domain of your "
    "own gets one by defining it)"
)

MATCHED = ("gp", "random")
"""The baselines that call no LLM and run at the evaluations the first arm's run counted."""

NO_GP = (
    "gp baseline skipped: the domain {domain} evolves text, not Python programs, and the GP "
    "operator edits Python syntax trees"
)


def _python_programs(domain: Any) -> bool:
    """Whether the domain's candidates are Python programs (what the GP operator can edit)."""
    return domain.scoring != "llm" and domain.context().language == "python"


@dataclass(frozen=True)
class ArmSpec:
    """One configuration of a comparison: its label and how its configuration is built."""

    name: str
    preset: str | None = None
    files: tuple[str, ...] = ()
    assignments: tuple[str, ...] = ()
    text: str = ""
    baseline: str | None = None  # one of BASELINES for a built-in baseline


@dataclass(frozen=True)
class ExperimentBudget:
    """The one budget every run gets: ``kind`` is llm_calls, evaluations or tokens."""

    kind: str
    amount: int

    def __post_init__(self) -> None:
        if self.kind not in _BUDGET_KEYS:
            raise ConfigError(f"budget kind {self.kind!r} is not one of {', '.join(_BUDGET_KEYS)}")
        if self.amount < 1:
            raise ConfigError(f"the budget must be at least 1 {self.kind}, got {self.amount}")

    def to_json(self) -> dict[str, int]:
        return {self.kind: self.amount}


@dataclass
class Experiment:
    """What ``evolm compare`` was asked to do (see the module docstring)."""

    domain: dict[str, Any]  # the [domain] table: {"name": ..., optional "params"}
    arms: list[ArmSpec]
    seeds: list[int]
    budget: ExperimentBudget
    out: Path
    baselines: list[str] = field(default_factory=list)
    llm: dict[str, Any] | None = None  # [llm] overrides (an --llm spec, parsed)
    preset: str | None = None
    assignments: list[str] = field(default_factory=list)
    target_fitness: float | None = None
    engine: dict[str, Any] = field(default_factory=dict)  # [engine] overrides (the sandbox)


@dataclass
class PlannedRun:
    """One run of the experiment: an arm at a seed, and where it is stored."""

    arm: ArmSpec
    seed: int
    path: Path
    data: dict[str, Any]  # the merged configuration, budget and seed not yet set
    config: RunConfig | None = None  # None for gp and random until their reference is measured
    reference: str | None = None  # gp and random: the run whose evaluations they match

    @property
    def label(self) -> str:
        return self.arm.name


def _split_items(spec: str, where: str) -> list[str]:
    """``spec`` cut at each ``;`` outside quotes and brackets."""
    items: list[str] = []
    cur: list[str] = []
    quote = ""
    closing = {"]": "[", "}": "{", ")": "("}
    stack: list[str] = []
    for ch in spec:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            stack.append(ch)
        elif ch in closing:
            if not stack or stack.pop() != closing[ch]:
                raise ConfigError(f"{where}: unbalanced {ch!r} in the spec; {_EXAMPLE}")
        elif ch == ";" and not stack:
            items.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if quote or stack:
        raise ConfigError(
            f"{where}: an unclosed {quote or stack[-1]!r} in the spec; close it, {_EXAMPLE}"
        )
    items.append("".join(cur))
    return [i.strip() for i in items if i.strip()]


def parse_arm(text: str) -> ArmSpec:
    """An ``--arm NAME=SPEC`` value (see the module docstring for the syntax).

    Raises:
        ConfigError: no ``NAME=``, a bad name, an item of no known form, two presets; the
            message names the fix.
    """
    name, sep, spec = text.partition("=")
    name = name.strip()
    where = f"--arm {text!r}"
    if not sep or not _NAME.match(name) or name.startswith(("preset:", "config:")):
        raise ConfigError(
            f"{where}: write NAME=SPEC, where NAME (letters, digits, _ . + -) labels the arm "
            f"and SPEC is preset:NAME, config:FILE.toml and KEY=VALUE items separated by ';'; "
            f"{_EXAMPLE}"
        )
    if name in BASELINES:
        raise ConfigError(
            f"{where}: {name!r} is the label of a built-in baseline; pick another arm name, or "
            f"ask for the baseline with --baselines {name}"
        )
    preset: str | None = None
    files: list[str] = []
    assignments: list[str] = []
    for item in _split_items(spec, where):
        if item.startswith("preset:"):
            if preset is not None:
                raise ConfigError(
                    f"{where}: two presets ({preset}, {item[7:]}); give one, and change single "
                    "values with KEY=VALUE items"
                )
            preset = item[7:].strip()
        elif item.startswith("config:"):
            files.append(item[7:].strip())
        elif "=" in item and _KEY.match(item.partition("=")[0].strip()):
            key = item.partition("=")[0].strip()
            if key == "seed" or key.startswith("budget"):
                raise ConfigError(
                    f"{where}: {key} is set by the comparison (--seeds and one --budget-* "
                    "option, equal for every arm); remove it from the arm"
                )
            assignments.append(item)
        else:
            raise ConfigError(
                f"{where}: cannot read the item {item!r}: items are preset:NAME, "
                f"config:FILE.toml or KEY=VALUE (a dotted key and a TOML value), separated "
                f"by ';'; {_EXAMPLE}"
            )
    return ArmSpec(name, preset, tuple(files), tuple(assignments), text=text)


def _arm_data(exp: Experiment, arm: ArmSpec) -> dict[str, Any]:
    """The arm's configuration as merged data (seed and budget not yet set)."""
    from evolm.config import _merge, _read_toml, list_presets, load_preset, parse_assignments

    where = f"arm {arm.name}"
    name = exp.domain["name"]
    preset = arm.preset or exp.preset or (name if name in list_presets() else None)
    data: dict[str, Any] = {}
    if preset:
        data = _merge(data, load_preset(preset))
    for f in arm.files:
        data = _merge(data, _read_toml(f))
    named = data.get("domain", {}).get("name") if isinstance(data.get("domain"), dict) else None
    if named is not None and named != name:
        source = f"preset {preset}" if preset and not arm.files else "its configuration"
        raise ConfigError(
            f"{where}: {source} is for the domain {named}, not {name}; compare on {named}, or "
            f"give the arm a preset without a [domain] (e.g. preset:embedded)"
        )
    data = _merge(data, {"domain": exp.domain})
    if exp.llm:
        data = _merge(data, {"llm": exp.llm})
    if exp.engine:
        data = _merge(data, {"engine": exp.engine})
    for items in (exp.assignments, arm.assignments):
        if items:
            table = parse_assignments(list(items))
            if isinstance(table.get("operators"), dict):
                raise ConfigError(
                    f"{where}: operators is a list of tables, one per operator: write "
                    'operators=[{kind="rewrite"}] or operators=[{kind="rewrite"}, '
                    '{kind="search_replace", weight=2}], not operators.KEY=...'
                )
            data = _merge(data, table)
    return data


def _baseline_data(reference: dict[str, Any], kind: str) -> dict[str, Any]:
    from evolm.config import _merge

    if kind == "best-of-n":
        return _merge(reference, {"archive": {"kind": "best_of_n"}})
    if kind == "ga":
        return _merge(reference, {"archive": {"kind": "population", "selection": "fitness"}})
    if kind in MATCHED:
        out = _merge(reference, {"operators": [{"kind": kind}], "models": []})
        out.pop("operator", None)
        return out
    raise ConfigError(f"unknown baseline {kind!r}; choose from {', '.join(BASELINES)}")


def _uses_llm(cfg: RunConfig) -> bool:
    from evolm.operators import OPERATORS

    return any(
        oc.kind not in OPERATORS or OPERATORS[oc.kind].uses_llm for oc in cfg.operator_list()
    )


def _with_budget(data: dict[str, Any], seed: int, budget: dict[str, Any], where: str) -> RunConfig:
    from pydantic import ValidationError

    from evolm.config import format_validation_error

    full = {**data, "seed": seed, "budget": budget}
    try:
        return RunConfig.model_validate(full)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {format_validation_error(exc)}") from exc


def _budget_table(exp: Experiment) -> dict[str, Any]:
    table: dict[str, Any] = dict(exp.budget.to_json())
    if exp.target_fitness is not None:
        table["target_fitness"] = exp.target_fitness
    return table


def plan_runs(exp: Experiment) -> tuple[list[PlannedRun], list[dict[str, str]]]:
    """Every run of the experiment, in the order they run (seed by seed: the arms, then the
    baselines), with each configuration validated; and the baselines skipped, with why.

    Raises:
        ConfigError: no arm, repeated labels, a bad arm configuration, an arm without an LLM
            operator under an LLM-call or token budget, an unknown baseline.
    """
    from evolm.domains.base import get_domain, operator_context

    if not exp.arms:
        raise ConfigError(
            f"no arm given: name at least one configuration with --arm NAME=SPEC; {_EXAMPLE}"
        )
    if not exp.seeds:
        raise ConfigError("no seed given: --seeds 0,1,2 runs every arm at seeds 0, 1 and 2")
    labels = [a.name for a in exp.arms]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise ConfigError(f"arm names repeat ({', '.join(repeated)}); give each arm its own name")
    unknown = [b for b in exp.baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(
            f"unknown baseline {unknown[0]!r}; choose from {', '.join(BASELINES)} (or all)"
        )
    budget = _budget_table(exp)
    base: list[tuple[ArmSpec, dict[str, Any]]] = []
    for arm in exp.arms:
        data = _arm_data(exp, arm)
        cfg = _with_budget(data, exp.seeds[0], budget, f"arm {arm.name}")
        if exp.budget.kind != "evaluations" and not _uses_llm(cfg):
            raise ConfigError(
                f"arm {arm.name} has no LLM operator, so an {exp.budget.kind} budget would never "
                "end its runs; compare with --budget-evals, or use the gp baseline "
                "(--baselines gp), which runs at the first arm's evaluations"
            )
        base.append((arm, data))
    skipped: list[dict[str, str]] = []
    first_arm, first = base[0]
    name = first["domain"]["name"]
    domain = get_domain(name, first["domain"].get("params") or {}) if exp.baselines else None
    for kind in dict.fromkeys(exp.baselines):
        if kind == "random" and (domain is None or operator_context(domain).random_program is None):
            skipped.append({"label": "random", "reason": NO_RANDOM.format(domain=name)})
            continue
        if kind == "gp" and domain is not None and not _python_programs(domain):
            skipped.append({"label": "gp", "reason": NO_GP.format(domain=name)})
            continue
        text = f"baseline {kind} of arm {first_arm.name} ({first_arm.text})"
        spec = ArmSpec(kind, text=text, baseline=kind)
        data = _baseline_data(first, kind)
        if kind not in MATCHED:
            _with_budget(data, exp.seeds[0], budget, f"baseline {kind}")
        base.append((spec, data))
    runs = []
    for seed in exp.seeds:
        for arm, data in base:
            path = exp.out / f"{arm.name}-seed{seed}.db"
            if arm.baseline in MATCHED:
                ref = exp.out / f"{first_arm.name}-seed{seed}.db"
                runs.append(PlannedRun(arm, seed, path, data, None, str(ref)))
            else:
                cfg = _with_budget(data, seed, budget, f"arm {arm.name}")
                runs.append(PlannedRun(arm, seed, path, data, cfg))
    return runs, skipped


def _event(exp: Experiment, run: PlannedRun) -> dict[str, Any]:
    assert run.config is not None
    budget = run.config.budget.model_dump(mode="json", exclude_none=True)
    return {
        "label": run.label,
        "spec": run.arm.text,
        "seed": run.seed,
        "budget": budget,
        "baseline": run.arm.baseline,
        "reference": run.reference,
    }


def _same_config(stored: dict[str, Any], cfg: RunConfig) -> list[str]:
    """The top-level keys where a stored configuration differs from the planned one.

    The stored configuration is read through this version's defaults first (as `evolm resume`
    reads it), so a key a later evolm added does not make an earlier run "another
    configuration"."""
    from evolm.config import load_config

    with contextlib.suppress(ConfigError):  # else compared as stored: still names the keys
        stored = load_config(overrides=stored).model_dump(mode="json")
    mine = cfg.model_dump(mode="json")
    keys = sorted(set(stored) | set(mine))
    return [
        k
        for k in keys
        if json.dumps(stored.get(k), sort_keys=True) != json.dumps(mine.get(k), sort_keys=True)
    ]


def run_state(run: PlannedRun) -> str:
    """``new`` (no run stored), ``done`` (completed or failed), or ``resume`` (it stopped
    midway: interrupted, or its process died).

    Raises:
        ConfigError: the file holds a run of another configuration than the planned one.
        evolm.store.StoreError: the file is not a run database.
    """
    from evolm.store import RunStore

    if not run.path.exists():
        return "new"
    with RunStore(run.path, readonly=True) as store:
        if not store.has_run():
            return "new"
        info = store.run_info()
    assert run.config is not None
    differs = _same_config(info["config"], run.config)
    if differs:
        raise ConfigError(
            f"{run.path} holds a run of another configuration than arm {run.label} at seed "
            f"{run.seed} (it differs in {', '.join(differs)}); give --out another directory, "
            f"or delete {run.path} to run it again"
        )
    return "done" if info["status"] in ("completed", "failed") else "resume"


def execute_run(path: Path, config: dict[str, Any], event: dict[str, Any], resume: bool) -> str:
    """Run (or resume) one run to its end in this process; returns how it ended, as text.

    The ``experiment`` event is stored before a new run begins. A run that fails before it
    begins leaves no database behind (as :func:`evolm.run` does).

    Raises:
        KeyboardInterrupt: the run was interrupted (it is stored, and resumable).
    """
    import asyncio

    import evolm
    from evolm.coevolution import runner_for
    from evolm.runlock import RunLock
    from evolm.store import RunStore

    if resume:
        result = evolm.resume(path)
        return _ended(result)
    cfg = RunConfig.model_validate(config)
    with RunLock(path, command="evolm compare"):
        if path.exists():
            evolm._remove_db(path)  # holds no run (checked by run_state)
        began = True
        store = RunStore(path)
        try:
            with store:
                try:
                    store.add_event(EVENT_KIND, event)
                    engine = runner_for(cfg, store)
                    result = asyncio.run(engine.run())
                finally:
                    began = evolm._holds_run(store)
        except BaseException:
            if not began:
                evolm._remove_db(path)
            raise
    return _ended(result)


def _ended(result: Any) -> str:
    """How a run ended, as text; an interrupted run (Ctrl-C) stops the experiment too, so a
    Ctrl-C does not just move on to the next run."""
    if result.status == "interrupted":
        raise KeyboardInterrupt
    return f"{result.status}: {result.reason}"


def _execute_job(args: tuple[str, dict[str, Any], dict[str, Any], bool]) -> str:
    """:func:`execute_run` for a worker process (plain arguments); errors come back as text."""
    path, config, event, resume = args
    try:
        return execute_run(Path(path), config, event, resume)
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"


def check_budget(exp: Experiment, run: PlannedRun, m: dict[str, Any]) -> str | None:
    """Why the run did not spend exactly its budget, or None when it did (or stopped early
    for a stated reason: the target fitness reached)."""
    assert run.config is not None
    b = run.config.budget
    reason = m.get("reason") or ""
    if m["status"] != "completed":
        return f"run {run.path.name} ended {m['status']}: {reason or 'no reason stored'}"
    if reason.startswith("target fitness"):
        return None
    if run.arm.baseline in MATCHED or b.evaluations is not None:
        want, got, unit = b.evaluations, m["evaluations"], "evaluations"
    elif b.llm_calls is not None:
        want, got, unit = b.llm_calls, m["llm_calls"], "LLM calls"
    else:
        want, got, unit = b.tokens, m["tokens"], "tokens"
        before = m.get("tokens_before_tail", 0)
        if want is not None and got >= want > before:
            # Spent by whole batches: the run stopped at the batch that crossed the budget, and
            # the batches already in flight then (at most pipeline_depth) finished.
            return None
        if want is not None and got >= want:
            return (
                f"run {run.path.name} spent {got} tokens, its budget is {want}, and had spent "
                f"{before} before its last batches: it went on past the budget"
            )
    if got != want:
        return f"run {run.path.name} counted {got} {unit}, its budget is {want} (stopped: {reason})"
    return None


def _matched_config(exp: Experiment, run: PlannedRun) -> RunConfig | None:
    """The configuration of a baseline with matched evaluations (gp, random) at the
    evaluations its reference run counted, or None when that run has none to match."""
    from evolm.store import RunStore

    ref = Path(str(run.reference))
    if not ref.exists():
        return None
    with RunStore(ref, readonly=True) as store:
        if not store.has_run():
            return None
        evals = int(store.evaluation_totals()["evaluations"])
    if evals < 1:
        return None
    budget = {"evaluations": evals}
    if exp.target_fitness is not None:
        budget["target_fitness"] = exp.target_fitness  # type: ignore[assignment]
    return _with_budget(run.data, run.seed, budget, f"baseline {run.label}")


def run_experiment(
    exp: Experiment,
    *,
    jobs: int = 1,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Plan, run (skipping finished runs, resuming interrupted ones), measure and compare;
    writes ``OUT/compare.json`` and ``OUT/compare.md`` and returns the comparison.

    ``jobs`` runs at once (worker processes; 1: one after another in this process).

    Raises:
        ConfigError: see :func:`plan_runs`, or a stored run of another configuration.
    """
    warn = warn or log
    runs, skipped = plan_runs(exp)
    exp.out.mkdir(parents=True, exist_ok=True)
    for s in skipped:
        warn(s["reason"])
    for run in runs:  # refuse a mismatched directory before anything runs
        if run.config is not None:
            run_state(run)
    first_pass = [r for r in runs if r.arm.baseline not in MATCHED]
    second_pass = [r for r in runs if r.arm.baseline in MATCHED]
    total = len(runs)
    counter = {"n": 0}
    outcomes: dict[Path, str] = {}
    measured: dict[Path, tuple[dict[str, Any] | None, str | None]] = {}
    grid = reference_grid(exp, runs)

    def ended(run: PlannedRun, end: str, head: str) -> None:
        """Record how a run ended, then check its budget at once (a warning names it)."""
        counter["n"] += 1
        outcomes[run.path] = end
        log(head.format(n=counter["n"]) + end)
        measured[run.path] = measure_and_check(exp, run, grid, end)
        m, note = measured[run.path]
        if note is not None:
            warn(f"warning: {note}")
        elif m is not None:
            spent = f"{m['llm_calls']} LLM calls, {m['evaluations']} evaluations"
            log(f"    spent {spent}, {m['tokens']} tokens (budget checked)")

    def start(batch: Sequence[PlannedRun]) -> None:
        todo = []
        for run in batch:
            if run.config is None:
                run.config = _matched_config(exp, run)
                if run.config is None:
                    counter["n"] += 1
                    outcomes[run.path] = f"skipped: no evaluations in {run.reference} to match"
                    warn(
                        f"[{counter['n']}/{total}] {run.label} seed {run.seed}: "
                        f"{outcomes[run.path]}"
                    )
                    continue
            state = run_state(run)
            if state == "done":
                counter["n"] += 1
                outcomes[run.path] = "finished before"
                log(
                    f"[{counter['n']}/{total}] {run.label} seed {run.seed}: already finished "
                    f"({run.path})"
                )
                continue
            todo.append((run, state == "resume"))
        if jobs <= 1 or len(todo) <= 1:
            for run, resume in todo:
                how = "resuming" if resume else "running"
                log(f"[{counter['n'] + 1}/{total}] {how} {run.label} seed {run.seed} -> {run.path}")
                assert run.config is not None
                end = _execute_job(
                    (str(run.path), run.config.model_dump(mode="json"), _event(exp, run), resume)
                )
                ended(run, end, "    ")
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {}
            for run, resume in todo:
                assert run.config is not None
                args = (str(run.path), run.config.model_dump(mode="json"), _event(exp, run), resume)
                futures[pool.submit(_execute_job, args)] = run
            for fut in as_completed(futures):
                run = futures[fut]
                head = f"[{{n}}/{total}] {run.label} seed {run.seed}: "
                ended(run, fut.result(), head)

    start(first_pass)
    start(second_pass)
    return compare_runs(exp, runs, skipped, outcomes, warn, measured)


def reference_grid(exp: Experiment, runs: Sequence[PlannedRun]) -> ReferenceGrid:
    """The grid every run is measured on: the first arm's grid bins (10 per descriptor when
    its archive is no grid) and its QD offset."""
    cfg = runs[0].config
    assert cfg is not None
    bins: int | tuple[int, ...] = 10
    raw = getattr(cfg.archive, "bins", None)
    if cfg.archive.kind in ("grid", "deep_grid") and raw is not None:
        bins = raw if isinstance(raw, int) else tuple(raw)
    return ReferenceGrid(bins=bins, qd_offset=cfg.archive.qd_offset)


def measure_and_check(
    exp: Experiment, run: PlannedRun, grid: ReferenceGrid, outcome: str | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """The run's figures (see :func:`evolm.comparison.measure_run`) with its seed, budget and
    ``budget_ok``, and the warning to print about it (a budget missed, no data), or None."""
    from evolm.store import StoreError

    if run.config is None or not run.path.exists():
        return None, f"run {run.path.name} has no data ({outcome or 'not run'})"
    try:
        m = measure_run(run.path, grid)
    except (StoreError, ConfigError) as exc:
        return None, f"run {run.path.name} cannot be measured: {exc}"
    m["seed"] = run.seed
    note = check_budget(exp, run, m)
    m["budget"] = run.config.budget.model_dump(mode="json", exclude_none=True)
    m["budget_ok"] = note is None
    return m, note


def compare_runs(
    exp: Experiment,
    runs: Sequence[PlannedRun],
    skipped: Sequence[dict[str, str]],
    outcomes: dict[Path, str],
    warn: Callable[[str], None],
    measured: dict[Path, tuple[dict[str, Any] | None, str | None]] | None = None,
) -> dict[str, Any]:
    """Measure every stored run (``measured`` holds those measured, and warned about, as they
    ended), check its budget, and write the comparison files."""
    grid = reference_grid(exp, runs)
    arms: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for run in runs:
        arm = arms.setdefault(
            run.label,
            {"label": run.label, "spec": run.arm.text, "baseline": run.arm.baseline, "runs": []},
        )
        if measured is not None and run.path in measured:
            m, note = measured[run.path]
        else:
            m, note = measure_and_check(exp, run, grid, outcomes.get(run.path))
            if note is not None:
                warn(f"warning: {note}")
        if note is not None:
            warnings.append(note)
        if m is not None:
            arm["runs"].append(m)
    rows = list(arms.values())
    for arm in rows:
        arm["summary"] = summarise(arm["runs"])
    first = rows[0]["summary"]
    best = arms.get("best-of-n")
    for arm in rows:
        arm["ratio_first"] = ratios(arm["summary"], first)
        arm["ratio_best_of_n"] = ratios(arm["summary"], best["summary"]) if best else None
    table = format_table(rows)
    result = {
        "domain": exp.domain,
        "budget": _budget_table(exp),
        "seeds": list(exp.seeds),
        "reference_grid": grid.to_json(),
        "first_arm": rows[0]["label"],
        "arms": rows,
        "skipped": list(skipped),
        "warnings": warnings,
        "table": table,
    }
    (exp.out / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    (exp.out / "compare.md").write_text(comparison_markdown(result))
    return result


def comparison_markdown(result: dict[str, Any]) -> str:
    """``compare.md``: the table and what it measures."""
    grid = result["reference_grid"]
    budget = ", ".join(f"{k} = {v}" for k, v in result["budget"].items())
    lines = [
        f"# Comparison on {result['domain']['name']}",
        "",
        f"Budget per run: {budget}; seeds {', '.join(map(str, result['seeds']))}. Each cell: "
        "mean ± half-width of the 95 % Student-t interval across seeds. QD score and coverage "
        f"on one reference grid (bins {grid['bins']}, QD offset "
        f"{'per domain' if grid['qd_offset'] is None else grid['qd_offset']}) holding every "
        "valid program a run evaluated; insertions: candidates that entered the run's own "
        "archive; valid share: candidates that ran and were scored (seeds excluded). "
        f"Ratios: mean QD score over the first arm's ({result['first_arm']}) and best-of-N's.",
        "",
        result["table"],
        "",
        "## Arms",
        "",
    ]
    lines += [f"- **{a['label']}**: `{a['spec']}`" for a in result["arms"]]
    if result["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {s['reason']}" for s in result["skipped"]]
    if result["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in result["warnings"]]
    return "\n".join(lines) + "\n"
