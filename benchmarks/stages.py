"""ELM Stages 2 and 3 on the bundled SmolLM2-135M-Instruct, at a scale two CPU cores can run.

Run: ``.venv/bin/python benchmarks/stages.py --out /tmp/stages-bench`` (52 minutes on two cores
with the defaults, measured: Stage 2 training 11, Stage 3 training 36, the evaluations 6).

1. A Sodarace run with the GP operator (no LLM; ``--evaluations``, seed ``--seed``), or the run
   database given with ``--run``.
2. Stage 2 (``evolm distill``): the elites above the per-niche cut ``--cut``, a LoRA round of
   ``--s2-steps`` steps, then ``--k`` samples from the base model and from the Stage-2 model
   (llama.cpp, the GGUF adapter), scored in the sandbox: valid share, niches, fitness, against
   the archive.
3. Stage 3 (``evolm rl``): ``--rl-steps`` GRPO steps on the five terrains (``--generations``
   completions per step, KL coefficient ``--beta``), reward = the walker's distance on the
   prompt's terrain, computed in the sandbox.
4. ELM §6: per terrain, the Stage-3 model's mean distance over ``--k`` samples, the Stage-2
   model's, the single best archive walker's and the per-terrain best (oracle).

Prints both tables and the minutes each part took. Everything it writes stays in ``--out``; a
second call with the same ``--out`` reuses a finished Stage-2 round and its evaluation, and
resumes (or reuses) the Stage-3 run, so a long benchmark can be run in parts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import evolm
from evolm.finetune.distill import distill, evaluate_stage2, read_stage2
from evolm.finetune.rl import RL_FILE, RLConfig, read_metrics, train_rl
from evolm.finetune.terrain_eval import evaluate_terrains, model_cell
from evolm.finetune.train import TrainConfig


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run", type=Path, default=None, help="a Sodarace run database")
    parser.add_argument("--evaluations", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cut", type=float, default=0.5)
    parser.add_argument("--s2-steps", type=int, default=120)
    parser.add_argument("--s2-lr", type=float, default=1e-3)
    parser.add_argument("--s2-batch", type=int, default=2)
    parser.add_argument("--rl-steps", type=int, default=24)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--beta", type=float, default=0.04)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--k", type=int, default=8, help="samples per terrain and model (ELM 6)")
    parser.add_argument("--s2-k", type=int, default=16, help="samples per model (Stage 2)")
    parser.add_argument("--save-steps", type=int, default=4)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    minutes: dict[str, float] = {}
    t0 = time.perf_counter()
    db = args.run
    if db is None:
        db = args.out / "gp.db"
        if not db.exists():
            evolm.run(
                {
                    "operator": {"kind": "gp"},
                    "budget": {"evaluations": args.evaluations},
                    "seed": args.seed,
                },
                preset="sodarace",
                out=db,
            )
    minutes["GP run"] = (time.perf_counter() - t0) / 60

    t0 = time.perf_counter()
    s2 = args.out / "stage2"
    if (s2 / "stage2.json").is_file():  # a finished round from an earlier call
        record = read_stage2(s2)
    else:
        record = distill(
            [db],
            s2,
            cut=args.cut,
            config=TrainConfig(
                max_steps=args.s2_steps,
                lr=args.s2_lr,
                batch_size=args.s2_batch,
                max_len=512,
                seed=args.seed,
                device=args.device,
            ),
        )
        minutes["Stage 2 training"] = (time.perf_counter() - t0) / 60
    t0 = time.perf_counter()
    ev2 = record.get("evaluation") or evaluate_stage2(
        s2, k=args.s2_k, max_tokens=args.max_tokens, seed=args.seed
    )
    if "evaluation" not in record:
        minutes["Stage 2 evaluation"] = (time.perf_counter() - t0) / 60

    t0 = time.perf_counter()
    s3 = args.out / "stage3"
    config = RLConfig(
        steps=args.rl_steps,
        generations=args.generations,
        beta=args.beta,
        lr=args.lr,
        max_completion_length=args.max_tokens,
        save_steps=args.save_steps,
        seed=args.seed,
        device=args.device,
    )
    if (s3 / RL_FILE).is_file():  # finish (or reuse) the run an earlier call started
        run = json.loads((s3 / RL_FILE).read_text())
        if run["status"] != "completed":
            run = train_rl(None, s3, resume=True)
            minutes["Stage 3 training (resumed)"] = (time.perf_counter() - t0) / 60
    else:
        run = train_rl(s2, s3, config=config)
        minutes["Stage 3 training"] = (time.perf_counter() - t0) / 60
    t0 = time.perf_counter()
    ev3 = evaluate_terrains(s3, k=args.k, max_tokens=args.max_tokens, seed=args.seed)
    minutes["ELM 6 evaluation"] = (time.perf_counter() - t0) / 60

    cpu = platform.processor() or platform.machine()
    print(f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, run {db}")
    c, m = record["dataset"], record["metrics"]
    print(
        f"Stage 2: cut {args.cut:g}: {c['qualifying']} distinct valid programs in {c['niches']} "
        f"niches ({c['skipped'].get('below cut', 0)} below the cut, {c['duplicates']} "
        f"duplicates) -> {c['train']} train / {c['val']} val; {m['steps']} steps, validation loss "
        f"{_n(m['val_loss_before'])} -> {_n(m['val_loss_after'])}, "
        f"{m['tokens_per_s']:.0f} tokens/s"
    )
    print("| model | valid | niches | new niches | mean fitness | best fitness |")
    print("|---|---|---|---|---|---|")
    for label in ("base", "stage2"):
        s = ev2[label]
        print(
            f"| {label} | {s['valid']}/{s['samples']} | {s['niches']} | {s['new_niches']} | "
            f"{_n(s['fitness_mean'])} | {_n(s['fitness_max'])} |"
        )
    a = ev2["archive"]
    print(f"| archive | - | {a['niches']} | - | {_n(a['fitness_mean'])} | {_n(a['fitness_max'])} |")
    steps = read_metrics(s3)
    print(
        f"Stage 3: {run['steps_done']} GRPO steps x {args.generations} completions, beta "
        f"{args.beta}; reward per step {[round(x['reward'], 2) for x in steps]}, "
        f"kl per step {[round(x['kl'], 4) for x in steps]}"
    )
    third = max(1, len(steps) // 3)
    thirds = [steps[i : i + third] for i in range(0, len(steps), third)]
    print(
        "mean reward per third of the steps: "
        + ", ".join(f"{sum(x['reward'] for x in t) / len(t):.1f}" for t in thirds)
        + f"; seconds per step {min(x['step_time'] for x in steps):.0f} to "
        f"{max(x['step_time'] for x in steps):.0f}; valid share "
        f"{sum(x['valid_share'] for x in steps) / len(steps):.2f}"
    )
    on = [x.get("terrain_rewards") for x in steps]
    if any(on):
        print(f"terrain(s) and reward per step: {on}")
    print(
        "mean distance ± the 95 % t half-width over the samples (valid samples); single best: "
        f"program {ev3['single_best_id']}, oracle: {ev3['oracle_ids']}"
    )
    print("| terrain | stage 3 | stage 2 | single best | oracle | stage 3's best sample |")
    print("|---|---|---|---|---|---|")
    for name, row in ev3["terrains"].items():
        print(
            f"| {name} | {model_cell(row['stage3'])} | {model_cell(row['stage2'])} | "
            f"{_n(row.get('single_best'))} | {_n(row.get('oracle'))} | "
            f"{row['stage3']['max']:.1f} |"
        )
    print("minutes: " + ", ".join(f"{k} {v:.1f}" for k, v in minutes.items()))
    print(f"total: {sum(minutes.values()):.1f} minutes")


if __name__ == "__main__":
    main()
