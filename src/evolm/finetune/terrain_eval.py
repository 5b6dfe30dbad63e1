"""ELM §6's evaluation of a terrain-conditioned model (Lehman et al. 2022, section 6).

For each terrain the Stage-3 run trained on, four numbers, all distances (the walker's fitness
on that terrain, in units, in the terrain's direction; a program that is not a valid walker
scores 0):

* ``stage3``: the conditioned model's mean over ``k`` samples from the terrain's prompt;
* ``stage2``: the Stage-2 model's mean over ``k`` samples from its own (unconditioned) prompt,
  the same ``k`` programs scored on every terrain, since the model cannot know the terrain;
* ``single_best``: the one archive walker with the best mean distance over all the terrains,
  run on this terrain (what a designer without conditioning would deploy everywhere);
* ``oracle``: the best archive walker on this terrain, chosen per terrain.

The archive is the first source run's final archive (its ``archive_top`` fittest elites), each
elite re-run on every terrain in the sandbox. Every program is scored by
:class:`~evolm.finetune.sampling.Scorer` with the run's Sodarace parameters and the terrain
swapped in (:func:`~evolm.finetune.rl.terrain_params`). The result is written to
``evaluation.json`` in the Stage-3 directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evolm.finetune.distill import read_stage2, rebuilt_source, stage_prompt
from evolm.finetune.rl import RL_FILE, RLError, terrain_params, terrain_prompts
from evolm.finetune.sampling import ModelSpec, Scorer, adapter_for, sample_programs
from evolm.stats import t_interval
from evolm.types import Evaluation

__all__ = ["EVAL_FILE", "evaluate_terrains", "model_cell"]

EVAL_FILE = "evaluation.json"


def _distances(evaluations: Sequence[Evaluation]) -> list[float]:
    return [float(ev.fitness) if ev.ok and ev.fitness is not None else 0.0 for ev in evaluations]


def model_cell(entry: dict[str, Any]) -> str:
    """A model's entry of the table as text: its mean distance, the 95 % interval's half-width
    (when there is one) and its valid samples, e.g. ``57.46 ± 51.02 (8/8)``."""
    half = entry.get("ci95")
    spread = f" ± {half:.2f}" if half is not None else ""
    return f"{entry['mean']:.2f}{spread} ({entry['valid']}/{entry['samples']})"


def _summary(evaluations: Sequence[Evaluation]) -> dict[str, Any]:
    d = _distances(evaluations)
    mean, half = t_interval(d) if d else (0.0, None)
    return {
        "mean": mean,
        "ci95": half,
        "max": max(d) if d else 0.0,
        "valid": sum(1 for ev in evaluations if ev.ok),
        "samples": len(d),
        "distances": d,
    }


def evaluate_terrains(
    stage3_dir: str | Path,
    *,
    k: int = 8,
    llm: str = "llama_cpp",
    archive_top: int = 64,
    max_tokens: int = 512,
    temperature: float = 0.8,
    seed: int = 0,
    workers: int = 2,
) -> dict[str, Any]:
    """The ELM §6 table of a finished Stage-3 run (module docstring).

    Args:
        stage3_dir: the ``evolm rl --out`` directory (its ``rl.json`` names the Stage-2 one).
        k: samples per terrain from each model.
        llm: ``llama_cpp`` (GGUF adapters) or ``hf`` (peft adapters) to sample with.
        archive_top: how many of the archive's fittest elites are candidates for the baselines.

    Returns:
        ``{"terrains": {name: {"stage3", "stage2", "single_best", "oracle"}}, "single_best_id",
        "oracle_ids", "k", "llm", "archive_elites", "seconds"}``; ``stage3`` and ``stage2`` hold
        ``mean``, ``ci95`` (the half-width of the mean's 95 % Student-t interval over the
        samples; None for one sample), ``max``, ``valid``, ``samples`` and ``distances`` (each
        sample's, in order).

    Raises:
        RLError: the directory holds no finished Stage-3 run, or an adapter is missing.
    """
    out = Path(stage3_dir)
    path = out / RL_FILE
    if not path.is_file():
        raise RLError(f"{out} holds no {RL_FILE}: name a directory that `evolm rl --out` wrote")
    run: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if run.get("status") != "completed":
        raise RLError(f"the Stage-3 run in {out} has not finished; continue it with --resume")
    kind = llm.split(":", 1)[0]
    if kind not in ("llama_cpp", "hf"):
        raise RLError(f"evaluate with llm llama_cpp or hf, got {llm!r}")
    stage2 = read_stage2(run["stage2"])
    adapters = {"stage3": adapter_for(out, kind), "stage2": adapter_for(run["stage2"], kind)}
    for label, adapter in adapters.items():
        if adapter is None:
            raise RLError(f"the {label} model has no adapter for the {kind} backend; try --llm hf")
    spec = f"{kind}:{stage2['base_model']['path']}"
    terrains = list(run["config"]["terrains"])
    t0 = time.perf_counter()
    source = rebuilt_source(stage2["runs"][0])
    elites = sorted(source.archive, key=lambda ind: -ind.fitness)[:archive_top]
    rows = terrain_prompts(stage2, terrains)
    stage3 = sample_programs(
        ModelSpec(spec, adapters["stage3"], "stage3"),
        [r["prompt"] for r in rows],
        k,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )
    stage2_codes = sample_programs(
        ModelSpec(spec, adapters["stage2"], "stage2"),
        [stage_prompt(source)],
        k,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )[0]
    table: dict[str, dict[str, Any]] = {}
    archive: dict[str, list[float]] = {}
    variants = {t: terrain_params(stage2, t) for t in terrains}
    with Scorer("sodarace", variants, workers=workers) as scorer:
        for i, t in enumerate(terrains):
            table[t] = {
                "stage3": _summary(scorer.evaluate(stage3[i], t, seed=seed)),
                "stage2": _summary(scorer.evaluate(stage2_codes, t, seed=seed)),
            }
            codes = [ind.program.code for ind in elites]
            archive[t] = _distances(scorer.evaluate(codes, t, seed=seed))
    result: dict[str, Any] = {"k": k, "llm": kind, "terrains": table, "archive_elites": len(elites)}
    if elites:
        means = [sum(archive[t][j] for t in terrains) / len(terrains) for j in range(len(elites))]
        best = max(range(len(elites)), key=lambda j: means[j])
        result["single_best_id"] = elites[best].program.id
        result["oracle_ids"] = {}
        for t in terrains:
            top = max(range(len(elites)), key=lambda j: archive[t][j])
            table[t]["single_best"] = archive[t][best]
            table[t]["oracle"] = archive[t][top]
            result["oracle_ids"][t] = elites[top].program.id
    result["seconds"] = time.perf_counter() - t0
    (out / EVAL_FILE).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
