"""Does the embedded model evolve anything, and does fine-tuning make it better? (ELM §4, Fig. 11)

Runs whole evolutions through the engine (real sandbox, real SQLite, the real embedded model)
for each *setting* and each seed, at an equal budget, and prints per setting the mean and a
95 % t-interval over seeds of:

- ``parsed``, ``valid``, ``inserted``: shares of the LLM-written (or GP-written) candidates
  whose completion gave code, whose code ran and was scored, and that entered the archive;
- ``new elites``: elites at the end that are not seeds (written by the setting's operator);
- ``QD score``: the run's own archive's (for best-of-N: the seeds plus the champion);
- ``grid QD``: every valid program of the run inserted into one MAP-Elites archive, the same
  for every setting (``--archive``, default the preset's), so that best-of-N's samples are
  scored cell for cell against MAP-Elites' (for a MAP-Elites run in that archive it equals
  ``QD score``);
- ``best`` fitness, and ``best - seeds``: how far the best program beats the best seed
  (positive: evolution found something better than every seed);
- ``reused``: the share of prompt tokens the model took from its KV cache instead of
  evaluating them (the embedded backend's prefix reuse), and ``s / call``: mean seconds per
  LLM call (both NaN for GP);
- seconds per run.

``--archive JSON`` replaces the preset's archive in the MAP-Elites and GP settings (e.g.
``'{"kind": "grid", "bins": 12, "selection": "uniform"}'``); ``--measure DB [DB ...]`` prints
the figures of finished run databases without running anything (runs extended with
``evolm resume DB --budget-llm-calls N`` included). ``--extend`` with ``--keep DIR`` resumes
the runs already kept in ``DIR`` up to ``--calls`` instead of starting them again, so that a
128-call comparison grows into a 256-call one; it refuses a kept run whose stored configuration
differs from the setting's in anything but the budget.

Settings (``--settings``, comma-separated; each starts from ``--preset``):

=================  ==========================================================================
``chat``           the embedded model in chat mode, as evolm 0.1 shipped it (no healing,
                   flat max_tokens, no adapter)
``completion``     completion mode with token healing and parent-sized max_tokens
``penalty``        ``completion`` plus a repetition penalty of 1.1
``adapter``        ``completion`` plus the LoRA adapter ``--adapter`` (default: the one the
                   preset ships for the domain), with the operator whose format the adapter
                   learnt (its card's ``format``; ``--adapter-operator`` overrides)
``preset``         the preset as it ships (``embedded``: its operator mix and bandit, with
                   the adapter ``--adapter``)
``best_of_n``      ``preset`` with a best-of-N archive: every parent is a seed (is evolution
                   needed?), at the same LLM calls
``adapter_best_of_n``  ``adapter`` with a best-of-N archive
``gp``             the GP baseline (AST edits, no LLM) at the same number of evaluations
=================  ==========================================================================

    .venv/bin/python benchmarks/self_improvement.py --domain image --calls 64 --seeds 1,2,3 \\
        --settings completion,adapter,preset,best_of_n,gp

Every figure comes from the run databases, which are kept in ``--keep DIR`` when given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import evolm
from evolm.types import SEED_OPERATOR

SETTINGS = (
    "chat",
    "completion",
    "penalty",
    "adapter",
    "adapter_best_of_n",
    "preset",
    "best_of_n",
    "gp",
)


def overrides(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides of one setting (on top of the preset)."""
    domain = {"name": args.domain, "params": {}}
    budget = {"llm_calls": args.calls}
    completion = {"mode": "completion", "token_healing": True, "lora": None}
    op_params: dict[str, Any] = dict(json.loads(args.op_params))
    operators: list[dict[str, Any]] | None = None  # None: the preset's own operators
    operator = args.operator
    if setting == "chat":
        llm = {"mode": "chat", "token_healing": False, "lora": None, "max_tokens": 384}
        op_params = {**op_params, "parent_sized": False}
    elif setting == "completion":
        llm = completion
    elif setting == "penalty":
        llm = {**completion, "repeat_penalty": 1.1}
    elif setting in ("adapter", "adapter_best_of_n"):
        llm = {**completion, "lora": args.adapter}
        operator = args.adapter_operator
    elif setting in ("preset", "best_of_n"):
        llm = {"lora": args.adapter}
    elif setting == "gp":
        return {
            **({"archive": args.archive} if args.archive else {}),
            "domain": domain,
            "operators": [{"kind": "gp", "params": {}}],
            # no LLM call is made; the backend is only built (no adapter loaded)
            "llm": {"backend": "llama_cpp", "lora": None},
            "budget": {"evaluations": args.calls + args.seed_count},
        }
    else:
        raise SystemExit(f"unknown setting {setting!r}; choose from {', '.join(SETTINGS)}")
    if setting not in ("preset", "best_of_n"):
        operators = [{"kind": operator, "params": op_params}]
    if args.model:
        llm["model_path"] = args.model
    if args.max_tokens:
        llm["max_tokens"] = args.max_tokens
    out: dict[str, Any] = {
        "domain": domain,
        "llm": {"backend": "llama_cpp", **llm, **json.loads(args.llm_params)},
        "budget": budget,
    }
    if operators is not None:
        out["operators"] = operators
    if setting in ("best_of_n", "adapter_best_of_n"):
        out["archive"] = {"kind": "best_of_n"}
    elif args.archive:
        out["archive"] = args.archive
    return out


def adapter_operator(spec: str | None, domain: str) -> str | None:
    """The operator an adapter was trained for, from its card (``<adapter>.json``)."""
    from evolm.llm.build import FORMAT_OPERATORS, resolve_adapter

    path = resolve_adapter(spec, domain)
    card = Path(path).with_suffix(".json") if path else None
    if card is None or not card.is_file():
        return None
    return FORMAT_OPERATORS.get(json.loads(card.read_text()).get("format", ""))


def check_extendable(db: Path, overrides: dict[str, Any], preset: str) -> None:
    """Refuse to extend a kept run whose configuration is not the one asked for.

    ``--extend`` resumes ``db`` with its stored configuration and only the budget raised; if
    anything else differs (another adapter, operator or archive), the figures would belong to
    a setting other than the one printed.
    """
    from evolm.config import RunConfig, load_config
    from evolm.store import RunStore

    wanted = load_config(preset=preset, overrides=overrides).model_dump(mode="json")
    with RunStore(db, readonly=True) as store:
        # validated, so that keys added since the run was stored compare at their defaults
        stored = RunConfig.model_validate(store.run_info()["config"]).model_dump(mode="json")
    differ = sorted(
        k for k in wanted.keys() | stored.keys() if k != "budget" and wanted.get(k) != stored.get(k)
    )
    if differ:
        raise SystemExit(
            f"--extend: {db} was run with a different {', '.join(differ)} than this setting "
            f"asks for; use another --keep directory or --label, or drop --extend to start "
            f"it again"
        )


def measure(db: Path, grid: dict[str, Any]) -> dict[str, float]:
    """Rates and archive figures of one finished run, read from its database.

    ``grid`` is the MAP-Elites archive config (``[archive]`` table) that ``grid QD`` is measured
    in, the same for every setting.
    """
    from evolm.store import RunStore

    with RunStore(db, readonly=True) as store:
        rows = [
            (r["operator"], r["status"], r["add_status"], r["id"], r["fitness"])
            for r in store.export_rows()
            if r["status"] is not None
        ]
        step = store.last_step()
        calls = [c.completion for c in store.llm_calls() if c.completion.ok]
    assert step is not None, f"{db} holds no told batch"
    prompt_tokens = sum(c.tokens_in for c in calls)
    reused = sum(int(c.extras.get("reused_tokens", 0)) for c in calls)

    seeds = [r for r in rows if r[0] == SEED_OPERATOR]
    children = [r for r in rows if r[0] != SEED_OPERATOR]
    n = max(len(children), 1)
    parsed = sum(r[1] != "invalid" for r in children)
    valid = sum(r[1] == "ok" for r in children)
    inserted = sum((r[2] or 0) > 0 for r in children)
    best_seed = max((r[4] for r in seeds if r[4] is not None), default=float("nan"))
    elite_ids = _elite_ids(db)
    seed_ids = {r[3] for r in seeds}
    return {
        "parsed": parsed / n,
        "valid": valid / n,
        "inserted": inserted / n,
        "new elites": len(elite_ids - seed_ids),
        "QD score": step.qd_score,
        "grid QD": grid_qd(db, grid),
        "best": float("nan") if step.max_fitness is None else step.max_fitness,
        "best - seeds": (step.max_fitness or float("nan")) - best_seed,
        "reused": reused / prompt_tokens if prompt_tokens else float("nan"),
        "s / call": sum(c.latency for c in calls) / len(calls) if calls else float("nan"),
    }


def grid_qd(db: Path, grid: dict[str, Any]) -> float:
    """QD score of every valid program of a run, inserted into the MAP-Elites archive ``grid``.

    For a MAP-Elites run in that archive this is its own QD score. For best-of-N, whose archive
    keeps only the seeds and the champion, it measures everything its samples found in the same
    map, so that the two settings compare cell for cell.
    """
    return _rebuilt(db, grid).stats.qd_score


def _elite_ids(db: Path) -> set[int]:
    """Program ids of the archive's elites at the end of the run (rebuilt from the database)."""
    return {ind.program.id for ind in _rebuilt(db)}


def _rebuilt(db: Path, archive: dict[str, Any] | None = None) -> Any:
    """The run's archive rebuilt from its database: the stored ``[archive]``, or ``archive``."""
    from evolm.config import RunConfig
    from evolm.domains.base import get_domain
    from evolm.scheduler.rebuild import build_archive, rebuild_archive
    from evolm.store import RunStore

    with RunStore(db, create=False) as store:
        data = store.run_info()["config"]
        config = RunConfig.model_validate(data if archive is None else {**data, "archive": archive})
        domain = get_domain(config.domain.name, config.domain.params)
        built = build_archive(config, domain)
        rebuild_archive(built, store)
    return built


def interval(values: list[float]) -> str:
    """mean ± half-width of a 95 % t-interval (n - 1 degrees of freedom)."""
    a = np.asarray(values, dtype=float)
    if len(a) < 2:
        return f"{a.mean():.3g}"
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}
    half = t.get(len(a), 2.0) * a.std(ddof=1) / math.sqrt(len(a))
    return f"{a.mean():.3g} ± {half:.2g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domain", default="image")
    ap.add_argument("--preset", default="embedded")
    ap.add_argument("--operator", default="prompt_mutation", help="operator of the other settings")
    ap.add_argument(
        "--adapter-operator",
        default=None,
        help="operator of the adapter settings (default: the format the adapter was trained on)",
    )
    ap.add_argument(
        "--op-params", default="{}", help="the operator's params, as JSON (LLM settings)"
    )
    ap.add_argument(
        "--llm-params",
        default="{}",
        help="more [llm] settings of the LLM settings, as JSON, e.g. '{\"prefix_cache_mb\": 0}'",
    )
    ap.add_argument("--calls", type=int, default=32, help="LLM calls per run")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--settings", default="completion,adapter,preset,best_of_n,gp")
    ap.add_argument("--adapter", default=None, help="GGUF adapter for the adapter settings")
    ap.add_argument(
        "--model", default=None, help="a GGUF file instead of the bundled SmolLM2 (LLM settings)"
    )
    ap.add_argument("--max-tokens", type=int, default=None, help="llm.max_tokens (a cap)")
    ap.add_argument(
        "--archive",
        default=None,
        help='the archive of the MAP-Elites settings, as JSON, e.g. \'{"kind": "grid", "bins": 6, '
        '"selection": "uniform"}\' (default: the preset\'s; best-of-N settings keep theirs)',
    )
    ap.add_argument("--label", default="", help="a suffix for the run files and the table rows")
    ap.add_argument("--keep", type=Path, default=None, help="keep the run databases here")
    ap.add_argument(
        "--extend",
        action="store_true",
        help="resume the run databases already in --keep up to this budget instead of "
        "starting them again (the seconds are then those of the extension)",
    )
    ap.add_argument(
        "--measure",
        type=Path,
        nargs="+",
        default=None,
        help="print the figures of these finished run databases (no run)",
    )
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = args.settings.split(",")
    from evolm.config import load_preset

    args.archive = json.loads(args.archive) if args.archive else None
    grid = args.archive or load_preset(args.preset)["archive"]
    if args.measure:
        for db in args.measure:
            row = measure(db, grid)
            print(f"  {db}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()))
        return
    if args.adapter is None:
        args.adapter = load_preset(args.preset).get("llm", {}).get("lora")
    if args.adapter_operator is None:
        args.adapter_operator = adapter_operator(args.adapter, args.domain) or args.operator
    from evolm.domains.base import get_domain

    args.seed_count = len(get_domain(args.domain, {}).seeds())
    out_dir = args.keep or Path(tempfile.mkdtemp(prefix="evolm-si-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"# {args.domain}, preset {args.preset}, operator {args.operator} (adapter settings: "
        f"{args.adapter_operator}), {args.calls} LLM "
        f"calls per run (GP: {args.calls + args.seed_count} evaluations), seeds {seeds}; "
        f"adapter {args.adapter}; model {args.model or 'bundled SmolLM2'}; "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores"
    )
    results: dict[str, list[dict[str, float]]] = {}
    for setting in settings:
        for seed in seeds:
            db = out_dir / f"{args.domain}-{setting}{args.label}-{seed}.db"
            t0 = time.perf_counter()
            cfg = overrides(setting, args) | {"seed": seed}
            if args.extend and db.exists():
                check_extendable(db, cfg, args.preset)
                evolm.resume(db, budget=cfg["budget"])
            else:
                db.unlink(missing_ok=True)
                evolm.run(cfg, preset=args.preset, out=str(db))
            row = measure(db, grid) | {"seconds": time.perf_counter() - t0}
            results.setdefault(setting + args.label, []).append(row)
            print(f"  {setting} seed {seed}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()))
    keys = [
        "parsed",
        "valid",
        "inserted",
        "new elites",
        "QD score",
        "grid QD",
        "best",
        "best - seeds",
        "reused",
        "s / call",
        "seconds",
    ]
    print()
    print("| setting | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for setting, rows in results.items():
        cells = [interval([r[k] for r in rows]) for k in keys]
        print(f"| {setting} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
