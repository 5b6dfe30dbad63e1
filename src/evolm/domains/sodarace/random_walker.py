"""Random walker programs for Sodarace: what random search (the ``random`` operator) samples.

A random program builds one of three body plans through the walker API, with sizes drawn
within the descriptor space's default bounds (12 units tall, 48 wide) so random search can
reach most of the map:

- ``cloud``: 3 to 12 joints scattered in a random box, joined by a random spanning tree (so
  the body is one piece) and a few extra random muscles;
- ``ring``: 4 to 12 joints on a circle around a hub, the rim and every spoke connected;
- ``ladder``: 2 to 8 segments of two joints each, with rails, rungs and diagonals.

Each muscle is a bone (amplitude 0) with a per-walker probability, otherwise a muscle with an
amplitude in [0.05, 0.5] (the API's :data:`~evolm.domains.sodarace.walker.MAX_AMPLITUDE`) and a
phase in [0, 2 pi). Joints are placed at least 0.5 units apart (the API asks for
:data:`~evolm.domains.sodarace.walker.MIN_JOINT_DISTANCE`), and every count is far below the
API's limits. The program holds the joints and muscles as literal lists and builds them with
``walker_creator()``, the way a seed does; the same generator state gives the same program.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PLANS", "random_walker_program"]

PLANS: tuple[str, ...] = ("cloud", "ring", "ladder")
"""The body plans a random walker is drawn from (uniformly)."""

_MIN_GAP = 0.5
_Joint = tuple[float, float]
_Edge = tuple[int, int]


def _cloud(rng: np.random.Generator) -> tuple[list[_Joint], list[_Edge]]:
    width, height = rng.uniform(2.0, 30.0), rng.uniform(1.0, 11.0)
    joints: list[_Joint] = []
    for _ in range(int(rng.integers(3, 13))):
        for _try in range(50):  # rejection sampling; a crowded box just gets fewer joints
            x, y = float(rng.uniform(0.0, width)), float(rng.uniform(0.0, height))
            if all(math.dist((x, y), j) >= _MIN_GAP for j in joints):
                joints.append((x, y))
                break
    n = len(joints)
    edges = {(int(rng.integers(i)), i) for i in range(1, n)}  # a random spanning tree
    for _ in range(int(rng.integers(0, n + 1))):
        a, b = (int(v) for v in rng.choice(n, size=2, replace=False))
        edges.add((min(a, b), max(a, b)))
    return joints, sorted(edges)


def _ring(rng: np.random.Generator) -> tuple[list[_Joint], list[_Edge]]:
    count, radius = int(rng.integers(4, 13)), rng.uniform(1.5, 5.5)
    turn = rng.uniform(0.0, 2 * math.pi)
    joints = [
        (
            radius * (1 + math.cos(turn + 2 * math.pi * k / count)),
            radius * (1 + math.sin(turn + 2 * math.pi * k / count)),
        )
        for k in range(count)
    ]
    joints.append((radius, radius))  # the hub
    rim = [(k, (k + 1) % count) for k in range(count)]
    spokes = [(k, count) for k in range(count)]
    return joints, [(min(a, b), max(a, b)) for a, b in rim] + spokes


def _ladder(rng: np.random.Generator) -> tuple[list[_Joint], list[_Edge]]:
    segments, step, height = int(rng.integers(2, 9)), rng.uniform(1.0, 5.0), rng.uniform(1.0, 8.0)
    joints = [(k * step, y) for k in range(segments + 1) for y in (0.0, height)]
    edges: list[_Edge] = []
    for k in range(segments + 1):
        low, high = 2 * k, 2 * k + 1
        edges.append((low, high))  # a rung
        if k < segments:
            edges += [(low, low + 2), (high, high + 2)]  # the rails
            edges.append((low, high + 2) if rng.random() < 0.5 else (high, low + 2))  # diagonal
    return joints, edges


_BUILDERS = {"cloud": _cloud, "ring": _ring, "ladder": _ladder}


def random_walker_program(rng: np.random.Generator) -> str:
    """A random ``make_walker()`` program (see the module docstring for what it builds)."""
    plan = PLANS[int(rng.integers(len(PLANS)))]
    joints, edges = _BUILDERS[plan](rng)
    bones = rng.uniform(0.0, 0.7)  # this walker's share of bones
    muscles = []
    for a, b in edges:
        if rng.random() < bones:
            muscles.append(f"({a}, {b}, 0.0, 0.0)")
        else:
            amplitude, phase = rng.uniform(0.05, 0.5), rng.uniform(0.0, 2 * math.pi)
            muscles.append(f"({a}, {b}, {amplitude:.3f}, {phase:.3f})")
    cells = [f"({x:.3f}, {y:.3f})," for x, y in joints]
    points = "".join(
        "        " + " ".join(cells[i : i + 4]) + "\n" for i in range(0, len(cells), 4)
    )
    listed = "".join(f"        {m},\n" for m in muscles)
    return (
        "def make_walker():\n"
        f"    # a random {plan}: {len(joints)} joints, {len(muscles)} muscles and bones\n"
        "    wc = walker_creator()\n"
        "    points = [\n"
        f"{points}"
        "    ]\n"
        "    joints = [wc.add_joint(x, y) for x, y in points]\n"
        "    # (joint, joint, amplitude, phase); amplitude 0 is a bone\n"
        "    muscles = [\n"
        f"{listed}"
        "    ]\n"
        "    for a, b, amplitude, phase in muscles:\n"
        "        wc.add_muscle(joints[a], joints[b], amplitude, phase)\n"
        "    return wc.get_walker()\n"
    )
