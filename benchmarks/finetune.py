"""Training speed of a LoRA round on the bundled SmolLM2-135M-Instruct (``evolm finetune``).

Run: ``.venv/bin/python benchmarks/finetune.py`` (about two minutes on two cores).

Makes a small image run with the fake LLM (real sandbox, real SQLite), builds the ``--format``
dataset of its accepted mutations (``--accept valid``), and trains ``--steps`` optimizer steps of
LoRA (rank 8 on all seven projections, the defaults) on the CPU with every core. Prints the
tokens trained per second (prompt and completion tokens, padding excluded, the figure the
progress bar shows), completion tokens per second, seconds per step, the time to load the base
model, and the validation loss before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import evolm
from evolm.finetune import TrainConfig, build_dataset, train_lora


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--format", default="full")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-len", type=int, default=1024)
    parser.add_argument("--evaluations", type=int, default=80)
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "run.db"
        evolm.run(
            {"llm": {"backend": "fake"}, "budget": {"evaluations": args.evaluations}, "seed": 1},
            preset="image",
            out=db,
        )
        data = build_dataset([db], format=args.format, accept="valid")
        config = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, max_len=args.max_len)
        t0 = time.perf_counter()
        result = train_lora(data, Path(tmp) / "out", config=config)
        total = time.perf_counter() - t0
    m = result.metrics
    cpu = platform.processor() or platform.machine()
    print(f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(
        f"format {args.format}: {m.train_examples} train / {m.val_examples} val examples, "
        f"batch {args.batch_size}, {m.steps} steps"
    )
    print(f"tokens trained: {m.tokens} ({m.completion_tokens} completion tokens)")
    per_s = m.completion_tokens / m.seconds
    print(f"tokens/s: {m.tokens_per_s:.0f}  completion tokens/s: {per_s:.0f}")
    print(f"seconds per step: {m.seconds / m.steps:.1f}  training: {m.seconds:.1f} s")
    print(f"whole round (load, validation twice, training, export): {total:.1f} s")
    print(f"validation loss: {m.val_loss_before:.4f} -> {m.val_loss_after:.4f}")


if __name__ == "__main__":
    main()
