"""``evolm distill`` and ``evolm rl``: ELM's Stage 2 (a model trained on the archive's elites)
and Stage 3 (terrain-conditioned RL with a KL penalty). The library code is
:mod:`evolm.finetune.distill`, :mod:`evolm.finetune.rl` and :mod:`evolm.finetune.terrain_eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from evolm.cli.common import TRAIN_PACKAGES, _fail, _need_packages, _training_progress, console

__all__ = ["distill", "rl"]


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False)


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def distill(
    runs: Annotated[list[Path], typer.Argument(help="Run databases whose elites to learn.")],
    out: Annotated[
        Path, typer.Option(help="Output directory: adapter/, adapter.gguf, stage2.json, ...")
    ],
    cut: Annotated[
        float,
        typer.Option(help="Per-niche fitness cut: keep each niche's top (1 - cut) (0.5, 0.8)."),
    ] = 0.5,
    conditioned: Annotated[
        bool, typer.Option(help="Put the niche's descriptors in the prompt.")
    ] = False,
    val_fraction: Annotated[float, typer.Option(help="Share held out (by niche).")] = 0.1,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    alpha: Annotated[float, typer.Option(help="LoRA alpha (scale alpha/rank).")] = 16.0,
    lr: Annotated[float, typer.Option(help="Peak learning rate (cosine decay).")] = 2e-4,
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = 1,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps (overrides --epochs).")
    ] = None,
    max_len: Annotated[int, typer.Option(help="Most tokens per example.")] = 1024,
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass.")] = 4,
    grad_accum: Annotated[int, typer.Option(help="Forward passes per optimizer step.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the split, training and sampling.")] = 0,
    base: Annotated[
        Path | None,
        typer.Option(help="Base model: a .gguf file or a model directory (default: bundled)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    samples: Annotated[
        int, typer.Option(help="Programs to sample per model for the evaluation (0: none).")
    ] = 16,
    eval_llm: Annotated[
        str, typer.Option(help="Backend to sample with: llama_cpp (GGUF adapter) or hf.")
    ] = "llama_cpp",
    max_tokens: Annotated[int, typer.Option(help="Most tokens per sampled program.")] = 512,
) -> None:
    """ELM Stage 2: train a model on runs' elites (per-niche fitness cut) and test its samples."""
    from evolm.finetune.dataset import DatasetError
    from evolm.finetune.distill import distill as run_distill
    from evolm.finetune.distill import evaluate_stage2
    from evolm.finetune.train import TrainConfig, TrainError

    _need_packages("distill")
    for path in runs:
        if not path.exists():
            _fail(f"run database {path} does not exist")
    if samples < 0:
        _fail(f"--samples must be >= 0 (0 skips the evaluation), got {samples}")
    try:
        config = TrainConfig(
            rank=rank,
            alpha=alpha,
            lr=lr,
            epochs=epochs,
            max_steps=max_steps,
            max_len=max_len,
            batch_size=batch_size,
            grad_accum=grad_accum,
            seed=seed,
            device=device,
        )
    except ValueError as exc:
        _fail(str(exc))
        return
    progress, on_progress = _training_progress(speed=False)

    _say(f"loading the base model {base or '(bundled SmolLM2-135M-Instruct)'} ...")
    try:
        with progress:
            record = run_distill(
                runs,
                out,
                cut=cut,
                conditioned=conditioned,
                val_fraction=val_fraction,
                base=base,
                config=config,
                on_progress=on_progress,
            )
    except (DatasetError, TrainError) as exc:
        _fail(str(exc))
        return
    c, m = record["dataset"], record["metrics"]
    _say(
        f"dataset (cut {cut:g}{', conditioned' if conditioned else ''}): "
        f"{c['qualifying']} distinct valid programs in {c['niches']} niches, "
        f"{c['skipped'].get('below cut', 0)} below the cut, {c['duplicates']} duplicates; "
        f"{c['train']} train, {c['val']} validation"
    )
    _say(
        f"trained {m['steps']} steps in {m['seconds']:.1f} s ({m['device']}); validation loss "
        f"{_num(m['val_loss_before'], '.4f')} -> {_num(m['val_loss_after'], '.4f')}"
    )
    _say(f"Stage-2 model: {out / 'adapter'} (hf), {out / 'adapter.gguf'} (llama_cpp)")
    if samples == 0:
        return
    _say(f"sampling {samples} programs from the base and the Stage-2 model ...")
    try:
        ev = evaluate_stage2(out, k=samples, llm=eval_llm, max_tokens=max_tokens, seed=seed)
    except DatasetError as exc:
        _fail(str(exc))
        return
    table = Table(box=box.SIMPLE, title="Stage 2: samples against the archive")
    for col in ("model", "valid", "niches", "new niches", "mean fitness", "best fitness"):
        table.add_column(col)
    if conditioned:
        table.add_column("niche hits")
    for label in ("base", "stage2"):
        s = ev[label]
        row = [
            label,
            f"{s['valid']}/{s['samples']}",
            str(s["niches"]),
            str(s["new_niches"]),
            _num(s["fitness_mean"]),
            _num(s["fitness_max"]),
        ]
        table.add_row(*row, *([f"{s['hits']}/{s['samples']}"] if conditioned else []))
    a = ev["archive"]
    table.add_row(
        "archive", "-", str(a["niches"]), "-", _num(a["fitness_mean"]), _num(a["fitness_max"])
    )
    console.print(table)


def rl(
    stage2: Annotated[
        Path | None,
        typer.Argument(help="The Stage-2 directory (evolm distill --out); not with --resume."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output directory: rl.json, metrics.jsonl, checkpoints/, adapter."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the Stage-3 run in this directory.")
    ] = None,
    terrains: Annotated[
        str, typer.Option(help="Comma-separated terrains to condition on.")
    ] = "flat,left-wall,right-wall,bumpy,tunnel",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 24,
    generations: Annotated[int, typer.Option(help="Completions per prompt (GRPO group).")] = 8,
    prompts_per_step: Annotated[
        int, typer.Option(help="Prompts (terrains) per step, each with its own group.")
    ] = 1,
    beta: Annotated[float, typer.Option(help="KL coefficient to the Stage-2 model (> 0).")] = 0.04,
    lr: Annotated[float, typer.Option(help="Learning rate of the adapter.")] = 1e-4,
    max_completion_length: Annotated[int, typer.Option(help="Most tokens per program.")] = 384,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    invalid_reward: Annotated[
        float, typer.Option(help="Reward of a program that is not a valid walker.")
    ] = -1.0,
    save_steps: Annotated[int, typer.Option(help="A checkpoint every this many steps.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of trl and of the evaluation.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    vllm: Annotated[bool, typer.Option(help="Generate with vLLM (CUDA GPU).")] = False,
    samples: Annotated[
        int, typer.Option(help="Samples per terrain for the ELM §6 evaluation (0: none).")
    ] = 8,
    eval_llm: Annotated[
        str, typer.Option(help="Backend to sample with: llama_cpp (GGUF adapter) or hf.")
    ] = "llama_cpp",
) -> None:
    """ELM Stage 3: terrain-conditioned RL of the Stage-2 model (KL penalty), then ELM §6."""
    from evolm.finetune.dataset import DatasetError
    from evolm.finetune.rl import RLConfig, RLError, train_rl
    from evolm.finetune.terrain_eval import evaluate_terrains, model_cell

    _need_packages("rl", (*TRAIN_PACKAGES, "trl", "datasets"))
    if (resume is None) == (out is None):
        _fail("give --out DIR for a new Stage-3 run, or --resume DIR to continue one")
    if resume is not None and stage2 is not None:
        _fail("--resume continues the run as recorded; do not name a Stage-2 directory with it")
    if resume is None and stage2 is None:
        _fail("name the Stage-2 directory that `evolm distill --out` wrote")
    target = resume or out
    assert target is not None
    config: RLConfig | None = None
    if resume is None:
        try:
            config = RLConfig(
                terrains=tuple(t.strip() for t in terrains.split(",") if t.strip()),
                steps=steps,
                generations=generations,
                prompts_per_step=prompts_per_step,
                beta=beta,
                lr=lr,
                max_completion_length=max_completion_length,
                temperature=temperature,
                invalid_reward=invalid_reward,
                save_steps=save_steps,
                seed=seed,
                device=device,
                use_vllm=vllm,
            )
        except RLError as exc:
            _fail(str(exc))
            return

    def on_step(line: dict[str, Any]) -> None:
        valid = line.get("valid_share")
        on = line.get("terrain_rewards") or {}
        where = " (" + ", ".join(f"{t} {_num(r)}" for t, r in on.items()) + ")" if on else ""
        _say(
            f"step {line['step']}: reward {_num(line.get('reward'))}{where} "
            f"(std {_num(line.get('reward_std'))}), kl {_num(line.get('kl'), '.4f')}, "
            f"valid {_num(valid) if valid is not None else '-'}"
        )

    _say(("resuming " if resume else "starting ") + f"Stage 3 in {target} ...")
    try:
        run = train_rl(stage2, target, config=config, resume=resume is not None, on_step=on_step)
    except (RLError, DatasetError) as exc:
        _fail(str(exc))
        return
    s = run["summary"]
    _say(
        f"{run['status']}: {run['steps_done']} steps in {run['seconds']:.0f} s; reward "
        f"{_num(s['reward_first'])} -> {_num(s['reward_last'])}, "
        f"mean kl {_num(s['kl_mean'], '.4f')}"
    )
    _say(f"Stage-3 model: {target / 'adapter'} (hf), {target / 'adapter.gguf'} (llama_cpp)")
    if samples == 0 or run["status"] != "completed":
        return
    _say(f"ELM §6 evaluation: {samples} samples per terrain and model ...")
    try:
        # as long a program as the run trained the model to write
        max_tokens = run["config"]["max_completion_length"]
        ev = evaluate_terrains(target, k=samples, llm=eval_llm, max_tokens=max_tokens, seed=seed)
    except (RLError, DatasetError) as exc:
        _fail(str(exc))
        return
    table = Table(box=box.SIMPLE, title="Stage 3: mean distance per terrain")
    for col in ("terrain", "stage 3 (valid)", "stage 2 (valid)", "single best", "oracle"):
        table.add_column(col)
    for name, row in ev["terrains"].items():
        table.add_row(
            name,
            model_cell(row["stage3"]),
            model_cell(row["stage2"]),
            _num(row.get("single_best")),
            _num(row.get("oracle")),
        )
    console.print(table)
