"""Sodarace: simulation cost per walker, where a run's time goes, and descriptor calibration.

    python benchmarks/sodarace.py [--repeats 20]                   # walkers per second per core
    python benchmarks/sodarace.py --run 400                          # a fake-LLM run's time split
    python benchmarks/sodarace.py --openelm-python VENV/bin/python   # OpenELM's simulator, same run
    python benchmarks/sodarace.py --calibrate 2000 [--seeds 0 1 2]   # descriptor bounds
    python benchmarks/sodarace.py --solver 131                       # solver sensitivity

**Walkers per second per core**: each seed and example is simulated ``--repeats`` times in this
process (one core) at the domain's default simulated time (1 s settle + 10 s measured = 660
physics steps); the figure is 1 / the median time per walker, and the time per physics step is
that time / 660. Building the walker is not counted.

**Run time split**: ``--run N`` runs ``evolm run sodarace`` (the default preset: fake LLM, 6^3
grid, 2 workers) for N evaluations. It reports the wall time, the evaluations' CPU time in the
workers (as the run database stores it), and the engine process's CPU time. The share of
evaluation time spent in the simulator is measured by re-running the run's valid programs in a
separate process, timing the program (building the walker) and the simulation apart.

**OpenELM**: ``--openelm-python`` names the Python of a virtual environment where OpenELM is
installed from its public release beside ``box2d``, ``numpy`` and ``pygame`` (its simulator
imports pygame and parses ``sys.argv``)::

    python -m venv /tmp/openelm-venv
    /tmp/openelm-venv/bin/pip install --no-deps openelm==0.9.2
    /tmp/openelm-venv/bin/pip install box2d==2.3.10 numpy pygame

The same walkers (the joints and muscles our seeds build) go to OpenELM's ``SodaraceSimulator``
in a subprocess, which steps it with its own ``update_world`` (21 physics steps per call) until
at least 660 steps have run; the figure is its time per physics step, and per walker at 660 steps
(its world setup included, as ours is).

**Solver sensitivity**: ``--solver N`` simulates N valid random walkers and the seeds with 8/3
and with 20/20 velocity/position iterations, for the simulator's spring muscles and for muscles
driven as rigid length constraints (``MUSCLE_SPRING_HZ = 0``), and prints the median distance
and, for the seeds, the range of distance ratios between the two iteration counts.

**Calibration**: ``--calibrate N`` runs N evaluations of the GP baseline (``--calibrate-operator
fake``: the fake LLM) from the seeds on a 12^3 grid with
wide bounds (height and width 0..100, mass 0..2000, so the archive does not clip), once per
``--seeds`` value (default 0 1 2), then prints percentiles of the height, width and mass of every
valid walker produced, seeds and examples included. docs/sodarace.md says how the default bounds
were chosen from them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from evolm.domains.sodarace import EXAMPLES, SEEDS, SodaraceDomain, example_code, seed_code
from evolm.domains.sodarace.simulator import SimConfig, simulate
from evolm.domains.sodarace.walker import Walker

STEPS = SimConfig().settle_steps + SimConfig().sim_steps

_OPENELM_CHILD = r"""
import importlib.util, json, os, sys, time, types
os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
request = json.loads(sys.stdin.read())
sys.argv = sys.argv[:1]  # OpenELM's Box2D framework parses the command line on import
root = importlib.util.find_spec("openelm").submodule_search_locations[0]
# skip the package __init__ files, which import the whole ELM stack (torch, hydra, ...)
for name, sub in [("openelm", ""), ("openelm.environments", "environments"),
                  ("openelm.environments.sodaracer", "environments/sodaracer")]:
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(root, sub)]
    sys.modules[name] = module
from importlib.metadata import version
from openelm.environments.sodaracer.simulator import SodaraceSimulator
out = {"version": version("openelm"), "walkers": {}}
for name, body in request["walkers"].items():
    per_walker, per_step = [], []
    for _ in range(request["repeats"]):
        t0 = time.perf_counter()
        sim = SodaraceSimulator(body)
        steps = 0
        while steps < request["steps"]:
            steps += sim.world.update_world(350)
        t = time.perf_counter() - t0
        per_walker.append(t * request["steps"] / steps)
        per_step.append(t / steps)
    out["walkers"][name] = {"per_walker": per_walker, "per_step": per_step, "steps": steps}
print(json.dumps(out))
"""


def _walkers() -> dict[str, Walker]:
    domain = SodaraceDomain()
    out = {}
    for name in SEEDS:
        built = domain.build(seed_code(name))
        assert isinstance(built, Walker), built
        out[name] = built
    for name in EXAMPLES:
        built = domain.build(example_code(name))
        assert isinstance(built, Walker), built
        out[f"{name} (example)"] = built
    return out


def simulation_speed(repeats: int) -> dict[str, float]:
    """Median seconds per simulated walker, per walker name."""
    domain = SodaraceDomain()
    out = {}
    for name, walker in _walkers().items():
        simulate(walker, domain.terrain)  # warm up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            simulate(walker, domain.terrain)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def openelm_speed(python: str, repeats: int) -> dict[str, Any]:
    """Run OpenELM's simulator on our seeds' walkers in ``python``; returns its timings."""
    bodies = {}
    for name, walker in _walkers().items():
        bodies[name] = {
            "joints": [list(j) for j in walker.joints],
            "muscles": [
                [
                    m.j0,
                    m.j1,
                    {
                        "type": "distance" if m.is_bone else "muscle",
                        "amplitude": m.amplitude,
                        "phase": m.phase,
                    },
                ]
                for m in walker.muscles
            ],
        }
    request = json.dumps({"walkers": bodies, "repeats": repeats, "steps": STEPS})
    proc = subprocess.run(
        [python, "-c", _OPENELM_CHILD], input=request, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


_SPLIT_CHILD = r"""
import json, sys, time
from evolm.domains.sodarace import SodaraceDomain
from evolm.domains.sodarace.walker import Walker
from evolm.store import RunStore
domain = SodaraceDomain()
with RunStore(sys.argv[1], readonly=True) as store:
    rows = [(i.program.code, i.program.seed) for i in store.evaluated() if i.evaluation.ok]
build = score = 0.0
for code, seed in rows:
    t0 = time.process_time()
    walker = domain.build(code, seed)
    t1 = time.process_time()
    if isinstance(walker, Walker):
        domain.score(walker)
    t2 = time.process_time()
    build += t1 - t0
    score += t2 - t1
print(json.dumps({"programs": len(rows), "build": build, "simulate": score}))
"""


def run_split(evaluations: int) -> dict[str, float]:
    """Run the default sodarace preset and split where its time went."""
    import evolm
    from evolm.store import RunStore

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "run.db"
        c0, t0 = time.process_time(), time.perf_counter()
        result = evolm.run(
            {
                "llm": {"backend": "fake"},
                "budget": {"evaluations": evaluations},
                "engine": {"workers": 2},
            },
            preset="sodarace",
            out=db,
        )
        wall, engine_cpu = time.perf_counter() - t0, time.process_time() - c0
        with RunStore(db, readonly=True) as store:
            counts = store.counts()
            eval_cpu = store.evaluation_totals()["cpu_time"]
        split = json.loads(
            subprocess.run(
                [sys.executable, "-c", _SPLIT_CHILD, str(db)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    sim_share = split["simulate"] / max(split["simulate"] + split["build"], 1e-12)
    return {
        "status": result.status,
        "evaluations": sum(counts.values()),
        "ok": counts.get("ok", 0),
        "wall": wall,
        "engine_cpu": engine_cpu,
        "eval_cpu": eval_cpu,
        "sim_share_of_eval": sim_share,
        "sim_share_of_cpu": eval_cpu * sim_share / (eval_cpu + engine_cpu),
    }


def calibrate(evaluations: int, seeds: list[int], operator: str = "gp") -> dict[str, list[float]]:
    """Descriptors of every valid walker of wide-bounds runs (one per seed) of ``operator``
    (``gp``: the GP baseline's AST edits; ``fake``: the fake LLM's numeric perturbations), plus
    the seeds' and examples' walkers."""
    import evolm
    from evolm.store import RunStore

    wide = {"height": [0, 100], "width": [0, 100], "mass": [0, 2000]}
    rows = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "run.db"
            evolm.run(
                {
                    "seed": seed,
                    "llm": {"backend": "fake"},
                    "budget": {"evaluations": evaluations},
                    "domain": {"params": {"descriptor_bounds": wide}},
                    **({"operator": {"kind": "gp"}} if operator == "gp" else {}),
                },
                preset="sodarace-elm",
                out=db,
            )
            with RunStore(db, readonly=True) as store:
                rows += [list(ind.descriptors) for ind in store.evaluated() if ind.evaluation.ok]
    for walker in _walkers().values():
        rows.append([walker.height, walker.width, walker.mass])
    arr = np.array(rows)
    return {name: arr[:, k].tolist() for k, name in enumerate(("height", "width", "mass"))}


def random_walkers(count: int, seed: int = 0) -> list[Walker]:
    """Valid random walkers: 3 to 24 joints in a random box up to 30 units, each pair joined
    with probability 0.35, half bones, half muscles with amplitude in [-0.6, 0.6]."""
    from evolm.domains.sodarace.walker import Muscle

    rng = np.random.default_rng(seed)
    out: list[Walker] = []
    while len(out) < count:
        n = int(rng.integers(3, 25))
        joints = rng.uniform(0, rng.uniform(3, 30), size=(n, 2))
        muscles = []
        for i in range(n):
            for j in range(i + 1, n):
                if rng.random() < 0.35:
                    amp = float(rng.choice([0.0, rng.uniform(-0.6, 0.6)]))
                    muscles.append(Muscle(i, j, amp, float(rng.uniform(-3, 3))))
        walker = Walker(tuple((float(x), float(y)) for x, y in joints), tuple(muscles))
        if not walker.problems():
            out.append(walker)
    return out


def solver_sensitivity(count: int) -> dict[str, dict[str, float]]:
    """How much distances depend on Box2D's solver iterations, for spring muscles (the model)
    and for muscles driven as rigid length constraints (``MUSCLE_SPRING_HZ = 0``)."""
    from evolm.domains.sodarace import simulator

    flat = SodaraceDomain().terrain
    population = random_walkers(count)
    seeds = [w for name, w in _walkers().items() if name in SEEDS]
    saved = (
        simulator.MUSCLE_SPRING_HZ,
        simulator.VELOCITY_ITERATIONS,
        simulator.POSITION_ITERATIONS,
    )
    out = {}
    try:
        for model, spring_hz in (("spring muscles", saved[0]), ("rigid muscles", 0.0)):
            dist = {}
            for iterations in ((8, 3), (20, 20)):
                simulator.MUSCLE_SPRING_HZ = spring_hz
                simulator.VELOCITY_ITERATIONS, simulator.POSITION_ITERATIONS = iterations
                dist[iterations] = (
                    [abs(simulate(w, flat).dx) for w in population],
                    [abs(simulate(w, flat).dx) for w in seeds],
                )
            base, more = dist[(8, 3)], dist[(20, 20)]
            ratios = [b / max(a, 1e-9) for a, b in zip(base[1], more[1], strict=True)]
            out[model] = {
                "median": float(np.median(base[0])),
                "median_more": float(np.median(more[0])),
                "seed_ratio_min": min(ratios),
                "seed_ratio_max": max(ratios),
            }
    finally:
        (
            simulator.MUSCLE_SPRING_HZ,
            simulator.VELOCITY_ITERATIONS,
            simulator.POSITION_ITERATIONS,
        ) = saved
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--run", type=int, default=0, help="evaluations of a fake-LLM run")
    parser.add_argument("--openelm-python", default=None, help="python with OpenELM installed")
    parser.add_argument("--calibrate", type=int, default=0, help="evaluations per calibration run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="calibration runs")
    parser.add_argument(
        "--calibrate-operator",
        choices=("gp", "fake"),
        default="gp",
        help="who mutates in calibration runs: the GP baseline (real edits) or the fake LLM",
    )
    parser.add_argument(
        "--solver", type=int, default=0, help="random walkers for the solver-sensitivity check"
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    if args.solver:
        print(f"median |dx| (units) of {args.solver} random walkers on flat ground, 10 s")
        print(f"{'model':<16} {'8/3 iterations':>15} {'20/20':>8} {'change':>8} {'seeds x':>14}")
        for model, r in solver_sensitivity(args.solver).items():
            change = r["median_more"] / r["median"] - 1
            print(
                f"{model:<16} {r['median']:>15.2f} {r['median_more']:>8.2f} {change:>+8.0%} "
                f"{r['seed_ratio_min']:>6.1f}..{r['seed_ratio_max']:.1f}"
            )
        return

    if args.calibrate:
        data = calibrate(args.calibrate, args.seeds, args.calibrate_operator)
        print(f"descriptor percentiles over {len(data['height'])} valid walkers")
        print(
            f"{'descriptor':<10} {'min':>8} {'p5':>8} {'p50':>8} {'p90':>8} {'p95':>8} "
            f"{'p99':>8} {'max':>8}"
        )
        for name, values in data.items():
            q = np.percentile(values, [0, 5, 50, 90, 95, 99, 100])
            print(f"{name:<10} " + " ".join(f"{v:8.2f}" for v in q))
        return

    print(f"simulation: {STEPS} physics steps per walker (1 s settle + 10 s measured), one core")
    ours = simulation_speed(args.repeats)
    theirs = openelm_speed(args.openelm_python, args.repeats) if args.openelm_python else None
    header = f"{'walker':<22} {'joints':>6} {'muscles':>7} {'ms/walker':>9} {'walkers/s':>9} "
    header += f"{'us/step':>8}"
    if theirs:
        header += f" {'OpenELM ms/walker':>17} {'OpenELM us/step':>15}"
    print(header)
    for name, walker in _walkers().items():
        t = ours[name]
        line = (
            f"{name:<22} {len(walker.joints):>6} {len(walker.muscles):>7} {t * 1e3:>9.2f} "
            f"{1 / t:>9.0f} {t / STEPS * 1e6:>8.1f}"
        )
        if theirs:
            o = theirs["walkers"][name]
            line += (
                f" {statistics.median(o['per_walker']) * 1e3:>17.2f}"
                f" {statistics.median(o['per_step']) * 1e6:>15.1f}"
            )
        print(line)
    if theirs:
        print(f"OpenELM {theirs['version']}, measured in a subprocess in the same run")

    if args.run:
        r = run_split(args.run)
        print(
            f"\nfake-LLM run ({r['status']}): {r['evaluations']} evaluations ({r['ok']} ok) in "
            f"{r['wall']:.1f} s wall; engine process CPU {r['engine_cpu']:.1f} s, "
            f"evaluation CPU in workers {r['eval_cpu']:.1f} s"
        )
        print(
            f"simulator share of evaluation time {r['sim_share_of_eval']:.1%}; "
            f"of all CPU time (engine + workers) {r['sim_share_of_cpu']:.1%}"
        )


if __name__ == "__main__":
    main()
