"""ELM Stage 2: train a model on the archive's elites, so it writes good programs from a short
prompt (Lehman et al. 2022, section 5).

ELM's first stage (a MAP-Elites search with an LLM mutation operator) leaves a large set of
working programs in a domain the model had never seen. Stage 2 turns them into a model that
writes such programs *without a parent*: the prompt names the domain (and, optionally, the niche
to fill), the completion is a whole program.

**Which programs** (:func:`select_elites`). Every program of the run databases whose evaluation
is ``ok`` is placed in its niche: the archive cell of its descriptors, under the run's own
archive (rebuilt from the stored configuration; archives without cells, such as the GA
population, are refused). Programs with the same code (up to trailing whitespace) are kept once,
the fittest copy, across all databases. Then a **per-niche fitness cut**: in a niche holding
``n`` distinct valid programs, the fittest ``max(1, ceil((1 - cut) * n))`` are kept (with any
that tie the last one kept), so ``cut = 0.5`` keeps each niche's better half and ``cut = 0.8``
its top fifth; every filled niche keeps its elite. This is ELM's 50 % and 80 % cuts (280K and
95K examples in the paper) read as quantiles within each niche. Niches are per database: two
runs' cell 17 are two niches, since their archives may differ.

**Examples** (:func:`build_distill_dataset`). The prompt is a few comment lines
(:func:`stage_prompt`): the file name and domain, the first sentence of the domain's task
description, and with ``conditioned`` the niche's descriptors (the program's own, rounded), e.g.
``# Target niche: height 3.00, width 10.50, mass 137.50``. The completion is the program, a
blank line and the line ``# End of program`` (:data:`~evolm.finetune.sampling.END`), where
sampling stops. Examples are split into train and validation by niche, so programs of one
niche (often near-copies) never sit on both sides.

**Training** is an ordinary LoRA round (:func:`~evolm.finetune.train.train_lora`): the same
tokenization, loss, files (``adapter/``, ``adapter.gguf``, ``card.json``, ``*.jsonl``) and
hyper-parameters as ``evolm finetune``. :func:`distill` adds ``stage2.json``: the cut, the
conditioning, the counts per niche and the prompt header, and later the evaluation.

**Evaluation** (:func:`evaluate_stage2`). ``k`` programs are sampled from the Stage-2 model and
from the base model with the same prompts and scored in the sandbox with the run's domain
parameters: the share that is valid, the niches they cover (and how many the archive did not
have), their mean and best fitness; with ``conditioned``, the prompts ask for the niches of the
archive's elites in turn and ``hits`` counts the samples that land in the niche asked for. The
archive itself (its filled niches, mean and best elite fitness) is the reference.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evolm.finetune.dataset import DatasetCounts, DatasetError, Example, SFTDataset, _split
from evolm.finetune.sampling import END, ModelSpec, Scorer, adapter_for, sample_programs
from evolm.store import RunStore, StoreError
from evolm.types import Evaluation, Individual, Program

__all__ = [
    "STAGE2_FILE",
    "DistillCounts",
    "Elite",
    "RunSource",
    "build_distill_dataset",
    "distill",
    "evaluate_stage2",
    "read_stage2",
    "select_elites",
    "source_from_record",
    "stage_prompt",
]

STAGE2_FILE = "stage2.json"


@dataclass(frozen=True)
class Elite:
    """A program kept for Stage 2.

    Attributes:
        source: the run database.
        program_id: its id there.
        code: the program.
        fitness, descriptors: its evaluation.
        niche: ``(run index, archive cell)``.
    """

    source: str
    program_id: int
    code: str
    fitness: float
    descriptors: tuple[float, ...]
    niche: tuple[int, int]


@dataclass
class DistillCounts(DatasetCounts):
    """:class:`~evolm.finetune.dataset.DatasetCounts` with the niches.

    ``qualifying`` counts distinct valid programs; ``skipped["below cut"]`` those the cut drops;
    ``duplicates`` the valid programs whose code an earlier (or fitter) one already had;
    ``niches`` the filled niches; ``groups`` the niches the examples fall into.
    """

    niches: int = 0
    cut: float = 0.5


@dataclass(frozen=True)
class RunSource:
    """What :func:`select_elites` needs to know of a run: its domain and archive."""

    path: Path
    domain: str
    params: dict[str, Any]
    archive: Any
    descriptor_names: tuple[str, ...]
    context: Any


def _source(store: RunStore) -> RunSource:
    from evolm.config import ConfigError, load_config
    from evolm.domains.base import get_domain
    from evolm.scheduler.rebuild import build_archive

    try:
        config = load_config(overrides=store.run_info()["config"])
        domain = get_domain(config.domain.name, config.domain.params)
    except (ConfigError, StoreError, ValueError) as exc:
        raise DatasetError(f"{store.path}: cannot rebuild the run's domain: {exc}") from exc
    archive = build_archive(config, domain)
    return RunSource(
        store.path,
        config.domain.name,
        dict(config.domain.params),
        archive,
        tuple(domain.descriptor_space.names),
        domain.context(),
    )


def source_from_record(record: dict[str, Any]) -> RunSource:
    """The domain of a ``stage2.json`` record (without its run database; no archive)."""
    from evolm.domains.base import get_domain

    domain = get_domain(record["domain"], record.get("params") or {})
    return RunSource(
        Path(record["runs"][0]),
        record["domain"],
        dict(record.get("params") or {}),
        None,
        tuple(domain.descriptor_space.names),
        domain.context(),
    )


def _open(path: str | Path) -> RunStore:
    try:
        return RunStore(Path(path), create=False, readonly=True)
    except StoreError as exc:
        raise DatasetError(str(exc)) from exc


def _norm(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.rstrip().split("\n"))


def cell_of(source: RunSource, ev: Evaluation) -> int:
    """The archive cell of an evaluation's descriptors under the run's archive.

    Raises:
        DatasetError: the run's archive has no cells.
    """
    cell = source.archive.cell_of(Individual(Program(id=0, code=""), ev))
    if cell is None:
        raise DatasetError(
            f"{source.path}: a {type(source.archive).__name__} has no cells, so it has no niches "
            "to cut by; distil a run with a grid, CVT or deep-grid archive"
        )
    return int(cell)


def select_elites(
    runs: Sequence[str | Path], cut: float = 0.5
) -> tuple[list[Elite], DistillCounts, list[RunSource]]:
    """The distinct valid programs of ``runs`` that pass the per-niche cut (module docstring).

    Returns:
        ``(elites, counts, sources)``: the elites fittest first within each niche, niches in
        order of first appearance; the counts (``train``/``val`` still 0); each run's domain.

    Raises:
        DatasetError: a database that is missing or not a run, runs of different domains, an
            archive without cells, or ``cut`` outside [0, 1).
    """
    if not (isinstance(cut, int | float) and 0 <= cut < 1):
        raise DatasetError(
            f"cut must be in [0, 1) (0.5 keeps each niche's better half), got {cut!r}"
        )
    if not runs:
        raise DatasetError("name at least one run database")
    counts = DistillCounts(cut=float(cut))
    best: dict[str, Elite] = {}
    sources: list[RunSource] = []
    for index, path in enumerate(runs):
        with _open(path) as store:
            source = _source(store)
            if sources and source.domain != sources[0].domain:
                raise DatasetError(
                    f"{path} is a {source.domain!r} run and {sources[0].path} a "
                    f"{sources[0].domain!r} run; distil runs of one domain"
                )
            sources.append(source)
            for ind in store.evaluated():
                counts.rows += 1
                if not ind.evaluation.ok:
                    continue
                elite = Elite(
                    str(store.path),
                    ind.program.id,
                    ind.program.code.rstrip() + "\n",
                    ind.fitness,
                    tuple(float(d) for d in ind.descriptors),
                    (index, cell_of(source, ind.evaluation)),
                )
                key = _norm(elite.code)
                kept = best.get(key)
                if kept is not None:
                    counts.duplicates += 1
                    if elite.fitness <= kept.fitness:
                        continue
                best[key] = elite
    counts.qualifying = len(best)
    niches: dict[tuple[int, int], list[Elite]] = {}
    for elite in best.values():
        niches.setdefault(elite.niche, []).append(elite)
    counts.niches = len(niches)
    kept_all: list[Elite] = []
    for members in niches.values():
        members.sort(key=lambda e: -e.fitness)
        n_keep = max(1, math.ceil((1 - cut) * len(members) - 1e-9))
        floor = members[n_keep - 1].fitness
        above = [e for e in members if e.fitness >= floor]
        dropped = len(members) - len(above)
        if dropped:
            counts.skipped["below cut"] = counts.skipped.get("below cut", 0) + dropped
        kept_all.extend(above)
    return kept_all, counts, sources


def stage_prompt(
    source: RunSource,
    *,
    niche: Sequence[float] | None = None,
    terrain: Any | None = None,
) -> str:
    """The short prompt of Stages 2 and 3: comment lines, then the program is the completion.

    Args:
        source: the run's domain (file name, task description, descriptor names).
        niche: descriptor values to ask for (a conditioned model), or None.
        terrain: a Sodarace :class:`~evolm.domains.sodarace.terrains.Terrain` to ask a walker
            for (Stage 3), or None. Its line goes second, after the file line and before the
            task line, so a Stage-3 prompt ends as every Stage-2 prompt does: with the line the
            Stage-2 model learnt to answer with a program. (With the terrain line last, a
            Stage-2 SmolLM2 wrote no valid walker in 32 samples on the four terrains other than
            flat, mostly prose going on from the description; with it second, 31 of 32.)
    """
    ctx = source.context
    first = ctx.description.split(". ")[0].strip().rstrip(".") + "."
    lines = [f"# {ctx.file_name}: a program for the {source.domain} domain."]
    if terrain is not None:
        lines.append(f"# Terrain: {terrain.name}: {terrain.description}")
    lines.append(f"# {first}")
    if niche is not None:
        names = source.descriptor_names
        parts = ", ".join(f"{n} {v:.2f}" for n, v in zip(names, niche, strict=True))
        lines.append(f"# Target niche: {parts}")
    return "\n".join(lines) + "\n"


def completion_of(code: str) -> str:
    """The training completion for a program: the code, a blank line and the end marker."""
    return code.rstrip() + f"\n\n{END}\n"


def build_distill_dataset(
    runs: Sequence[str | Path],
    *,
    cut: float = 0.5,
    conditioned: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> SFTDataset:
    """The Stage-2 dataset of ``runs`` (module docstring); ``format`` is ``distill`` or
    ``distill-niche``, ``accept`` records the cut, ``split_by`` is ``niche``.

    Raises:
        DatasetError: see :func:`select_elites`; also ``val_fraction`` outside [0, 1).
    """
    if not (0 <= val_fraction < 1):
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    elites, counts, sources = select_elites(runs, cut)
    groups: dict[tuple[int, int], list[Example]] = {}
    order: list[tuple[Example, tuple[int, int]]] = []
    for e in elites:
        source = sources[e.niche[0]]
        prompt = stage_prompt(source, niche=e.descriptors if conditioned else None)
        example = Example(prompt, completion_of(e.code), e.source, e.program_id, -1)
        groups.setdefault(e.niche, []).append(example)
        order.append((example, e.niche))
    val_groups, counts.groups = _split(groups, val_fraction, seed)
    train = [ex for ex, g in order if g not in val_groups]
    val = [ex for ex, g in order if g in val_groups]
    counts.train, counts.val = len(train), len(val)
    return SFTDataset(
        train,
        val,
        counts,
        "distill-niche" if conditioned else "distill",
        f"cut {cut:g}",
        "niche",
        tuple(Path(p) for p in runs),
    )


def distill(
    runs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    cut: float = 0.5,
    conditioned: bool = False,
    val_fraction: float = 0.1,
    base: str | Path | None = None,
    config: Any = None,
    on_progress: Callable[[int, int, float, float], None] | None = None,
) -> dict[str, Any]:
    """A Stage-2 round: :func:`build_distill_dataset`, then a LoRA round into ``out_dir``.

    Writes what :func:`~evolm.finetune.train.train_lora` writes, and ``stage2.json``
    (:func:`read_stage2`): ``runs``, ``domain``, ``params``, ``cut``, ``conditioned``,
    ``prompt`` (the unconditioned prompt), ``dataset`` (counts), ``base_model``,
    ``hyperparameters`` and ``metrics`` (from the card), ``created_at``.

    Returns:
        The ``stage2.json`` record.

    Raises:
        DatasetError: see :func:`build_distill_dataset`, or no example to train on.
        evolm.finetune.train.TrainError: training cannot run.
    """
    from evolm.finetune.train import TrainConfig, train_lora

    cfg = config or TrainConfig()
    dataset = build_distill_dataset(
        runs, cut=cut, conditioned=conditioned, val_fraction=val_fraction, seed=cfg.seed
    )
    c = dataset.counts
    if not dataset.train:
        raise DatasetError(
            f"no program to train on: {c.rows} evaluated programs in {len(runs)} run database(s), "
            f"{c.qualifying} distinct valid ones; run the search longer (a GP run needs no LLM: "
            "evolm run DOMAIN --operator gp)"
        )
    result = train_lora(dataset, out_dir, base=base, config=cfg, on_progress=on_progress)
    with _open(runs[0]) as store:
        source = _source(store)
    record: dict[str, Any] = {
        "stage": 2,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": [str(Path(p).resolve()) for p in runs],
        "domain": source.domain,
        "params": source.params,
        "cut": cut,
        "conditioned": conditioned,
        "prompt": stage_prompt(source),
        "dataset": asdict(c),
        "base_model": result.card["base_model"],
        "hyperparameters": result.card["hyperparameters"],
        "metrics": result.card["metrics"],
        "gguf": result.gguf.name if result.gguf else None,
    }
    _write(Path(out_dir), record)
    return record


def _write(out: Path, record: dict[str, Any]) -> None:
    (out / STAGE2_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_stage2(out_dir: str | Path) -> dict[str, Any]:
    """The ``stage2.json`` of a Stage-2 output directory.

    Raises:
        DatasetError: the directory holds no ``stage2.json`` (it is not a Stage-2 output).
    """
    path = Path(out_dir) / STAGE2_FILE
    if not path.is_file():
        raise DatasetError(
            f"{out_dir} holds no {STAGE2_FILE}: name a directory that `evolm distill --out` wrote"
        )
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return record


def _model_stats(
    source: RunSource, evaluations: Sequence[Evaluation], targets: Sequence[int] | None
) -> dict[str, Any]:
    archive_cells = {source.archive.cell_of(ind) for ind in source.archive}
    valid = [ev for ev in evaluations if ev.ok]
    cells = [cell_of(source, ev) for ev in valid]
    fits = [float(ev.fitness) for ev in valid if ev.fitness is not None]
    out: dict[str, Any] = {
        "samples": len(evaluations),
        "valid": len(valid),
        "valid_share": len(valid) / len(evaluations) if evaluations else 0.0,
        "niches": len(set(cells)),
        "new_niches": len(set(cells) - archive_cells),
        "fitness_mean": sum(fits) / len(fits) if fits else None,
        "fitness_max": max(fits) if fits else None,
        "status": _status_counts(evaluations),
    }
    if targets is not None:
        out["hits"] = sum(
            1
            for ev, t in zip(evaluations, targets, strict=True)
            if ev.ok and cell_of(source, ev) == t
        )
    return out


def _status_counts(evaluations: Sequence[Evaluation]) -> dict[str, int]:
    out: dict[str, int] = {}
    for ev in evaluations:
        out[ev.status.value] = out.get(ev.status.value, 0) + 1
    return out


def archive_stats(source: RunSource) -> dict[str, Any]:
    """The filled niches and the mean and best elite fitness of a run's archive."""
    fits = [ind.fitness for ind in source.archive]
    return {
        "niches": len(fits),
        "fitness_mean": sum(fits) / len(fits) if fits else None,
        "fitness_max": max(fits) if fits else None,
    }


def rebuilt_source(run: str | Path) -> RunSource:
    """A run's domain and its archive as the run left it (rebuilt from the database)."""
    from evolm.scheduler.rebuild import rebuild_archive

    with _open(run) as store:
        source = _source(store)
        rebuild_archive(source.archive, store)
    return source


def evaluate_stage2(
    out_dir: str | Path,
    *,
    k: int = 16,
    llm: str = "llama_cpp",
    max_tokens: int = 512,
    temperature: float = 0.8,
    seed: int = 0,
    workers: int = 2,
    tier: str = "auto",
    allow_weak: bool = False,
) -> dict[str, Any]:
    """Sample ``k`` programs from the Stage-2 model of ``out_dir`` and from its base model, score
    them in the sandbox, compare with the first source run's archive (module docstring), and
    record the result under ``evaluation`` in ``stage2.json``.

    Args:
        llm: ``llama_cpp`` (the GGUF adapter on the base GGUF) or ``hf`` (the peft adapter on
            the base model); the base model is the one the round trained on.

    Returns:
        ``{"k", "llm", "base", "stage2", "archive", "seconds"}`` with the statistics of
        :func:`_model_stats` for each model.

    Raises:
        DatasetError: ``out_dir`` is not a Stage-2 output, or its adapter for ``llm`` is missing.
    """
    import time

    record = read_stage2(out_dir)
    kind = llm.split(":", 1)[0]
    if kind not in ("llama_cpp", "hf"):
        raise DatasetError(f"evaluate with llm llama_cpp or hf, got {llm!r}")
    lora = adapter_for(out_dir, kind)
    if lora is None:
        wanted = "adapter.gguf" if kind == "llama_cpp" else "adapter/"
        raise DatasetError(f"{out_dir} has no {wanted} for the {kind} backend; try --llm hf")
    base_path = record["base_model"]["path"]
    spec = f"{kind}:{base_path}"
    source = rebuilt_source(record["runs"][0])
    if record["conditioned"]:
        elites = sorted(source.archive, key=lambda ind: source.archive.cell_of(ind))
        if not elites:
            raise DatasetError(f"{record['runs'][0]} has an empty archive: no niche to ask for")
        chosen = [elites[i % len(elites)] for i in range(k)]
        prompts = [stage_prompt(source, niche=ind.descriptors) for ind in chosen]
        targets: list[int] | None = [int(source.archive.cell_of(ind)) for ind in chosen]
        per_prompt = 1
    else:
        prompts, targets, per_prompt = [stage_prompt(source)], None, k
    t0 = time.perf_counter()
    result: dict[str, Any] = {"k": k, "llm": kind, "temperature": temperature, "seed": seed}
    with Scorer(
        source.domain, {"run": source.params}, workers=workers, tier=tier, allow_weak=allow_weak
    ) as scorer:
        for model in (ModelSpec(spec, None, "base"), ModelSpec(spec, lora, "stage2")):
            samples = sample_programs(
                model,
                prompts,
                per_prompt,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
            )
            codes = [code for group in samples for code in group]
            evaluations = scorer.evaluate(codes, "run", seed=seed)
            result[model.label] = _model_stats(source, evaluations, targets)
    result["archive"] = archive_stats(source)
    result["seconds"] = time.perf_counter() - t0
    record["evaluation"] = result
    _write(Path(out_dir), record)
    return result
