"""Terrains: the ground a walker is tested on (ELM's Stage 1 flat ground and Stage 3 terrains).

Every terrain is built around the walker's starting position. The walker spawns with the centre
of its bounding box at ``x = 0`` and its lowest joint resting on the ground (``y = 0``); every
obstacle starts ``gap`` units beyond the walker's bounding box, so a terrain means the same for a
small and a large walker. Units are walker units (1 unit = 0.1 m in the physics world).

=============  ===========================================================  ==================
terrain        geometry (parameters and defaults)                           fitness
=============  ===========================================================  ==================
``flat``       level ground                                                 ``|dx|``
``left-wall``  level ground and a wall ``height`` (250) tall, ``gap`` (5)   ``max(dx, 0)``
               left of the walker                                           (move right)
``right-wall`` the mirror image: the wall is on the right                   ``max(-dx, 0)``
                                                                            (move left)
``bumpy``      level under the walker; from ``gap`` (5) beyond it on both   ``|dx|``
               sides, smooth bumps ``height`` (1.5) tall every ``spacing``
               (6) units, for ``length`` (400) units
``tunnel``     level ground; from ``gap`` (5) beyond the walker on both     ``|dx|``
               sides, a ceiling ``height`` (8) above the ground, ``length``
               (400) units long, with solid rock 250 units thick above it
=============  ===========================================================  ==================

``dx`` is the horizontal displacement of the walker's centre of mass (x grows to the right).
The fitness column is each terrain's default ``direction`` (``any``, ``right``, ``left``); a
domain can override it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DIRECTIONS",
    "GROUND_HALF_LENGTH",
    "TERRAINS",
    "Terrain",
    "TerrainGeometry",
    "directional_fitness",
    "make_terrain",
]

GROUND_HALF_LENGTH = 5000.0
"""The ground extends this far (units) on both sides of the start."""
DIRECTIONS = ("any", "right", "left")
_WALL_THICKNESS = 4.0
_ROCK = 250.0
"""Height of walls and thickness of the rock above a tunnel: more than any walker's extent."""
_BUMP_SEGMENTS = 8

Point = tuple[float, float]


@dataclass(frozen=True)
class TerrainGeometry:
    """Static shapes of a terrain, in walker units.

    Attributes:
        ground: the ground surface as a polyline, left to right.
        blocks: convex polygons (walls, ceilings), each a tuple of vertices.
    """

    ground: tuple[Point, ...]
    blocks: tuple[tuple[Point, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "ground": [list(p) for p in self.ground],
            "blocks": [[list(p) for p in b] for b in self.blocks],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TerrainGeometry:
        return cls(
            ground=tuple((float(x), float(y)) for x, y in d["ground"]),
            blocks=tuple(tuple((float(x), float(y)) for x, y in b) for b in d["blocks"]),
        )


@dataclass(frozen=True)
class _Spec:
    description: str
    direction: str
    defaults: dict[str, float] = field(default_factory=dict)


TERRAINS: dict[str, _Spec] = {
    "flat": _Spec("flat, level ground", "any"),
    "left-wall": _Spec(
        "level ground with a tall wall just to the left of the robot, so it must move right",
        "right",
        {"gap": 5.0, "height": _ROCK},
    ),
    "right-wall": _Spec(
        "level ground with a tall wall just to the right of the robot, so it must move left",
        "left",
        {"gap": 5.0, "height": _ROCK},
    ),
    "bumpy": _Spec(
        "ground covered with smooth bumps on both sides of the robot's starting point",
        "any",
        {"gap": 5.0, "height": 1.5, "spacing": 6.0, "length": 400.0},
    ),
    "tunnel": _Spec(
        "level ground under a low ceiling on both sides of the robot's starting point, so a "
        "tall robot cannot pass",
        "any",
        {"gap": 5.0, "height": 8.0, "length": 400.0},
    ),
}


def _box(x0: float, x1: float, y0: float, y1: float) -> tuple[Point, ...]:
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _bumps(start: float, sign: float, height: float, spacing: float, length: float) -> list[Point]:
    """Points of the bump profile ``height * sin^2(pi * s / spacing)`` going outwards."""
    count = max(1, math.floor(length / spacing))
    pts = []
    for k in range(1, count * _BUMP_SEGMENTS + 1):
        s = k * spacing / _BUMP_SEGMENTS
        pts.append((start + sign * s, height * math.sin(math.pi * s / spacing) ** 2))
    return pts


@dataclass(frozen=True)
class Terrain:
    """A named terrain with its parameters; see the module docstring.

    Build with :func:`make_terrain`, which checks the name and parameters.
    """

    name: str
    params: Mapping[str, float]
    direction: str

    @property
    def description(self) -> str:
        return TERRAINS[self.name].description

    def geometry(self, left: float, right: float) -> TerrainGeometry:
        """The terrain around a walker whose bounding box spans ``[left, right]`` at the start."""
        p = self.params
        far = GROUND_HALF_LENGTH
        ground: list[Point] = [(-far, 0.0), (far, 0.0)]
        blocks: list[tuple[Point, ...]] = []
        if self.name == "left-wall":
            x = left - p["gap"]
            blocks.append(_box(x - _WALL_THICKNESS, x, 0.0, p["height"]))
        elif self.name == "right-wall":
            x = right + p["gap"]
            blocks.append(_box(x, x + _WALL_THICKNESS, 0.0, p["height"]))
        elif self.name == "bumpy":
            lo, hi = left - p["gap"], right + p["gap"]
            args = (p["height"], p["spacing"], p["length"])
            left_pts = _bumps(lo, -1.0, *args)[::-1]
            right_pts = _bumps(hi, 1.0, *args)
            ground = [(-far, 0.0), *left_pts, (lo, 0.0), (hi, 0.0), *right_pts, (far, 0.0)]
        elif self.name == "tunnel":
            h, t = p["height"], _ROCK
            lo, hi = left - p["gap"], right + p["gap"]
            blocks.append(_box(lo - p["length"], lo, h, h + t))
            blocks.append(_box(hi, hi + p["length"], h, h + t))
        return TerrainGeometry(tuple(ground), tuple(blocks))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params), "direction": self.direction}


def directional_fitness(dx: float, direction: str) -> float:
    """Fitness from the centre-of-mass displacement ``dx``: ``|dx|``, ``max(dx, 0)`` or
    ``max(-dx, 0)`` for direction ``any``, ``right`` or ``left``."""
    if direction == "right":
        return max(dx, 0.0)
    if direction == "left":
        return max(-dx, 0.0)
    return abs(dx)


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def make_terrain(
    name: str, params: Mapping[str, Any] | None = None, direction: str | None = None
) -> Terrain:
    """Build terrain ``name`` (case-insensitive; ``LEFT_WALL`` = ``left-wall``).

    Args:
        name: one of :data:`TERRAINS`.
        params: overrides of the terrain's parameters (see the module docstring).
        direction: ``any``, ``right`` or ``left``; None for the terrain's default.

    Raises:
        ValueError: unknown terrain, direction or parameter, or a parameter that is not a
            positive finite number.
    """
    if not isinstance(name, str) or _canonical(name) not in TERRAINS:
        raise ValueError(f"unknown terrain {name!r}; known terrains: {', '.join(TERRAINS)}")
    key = _canonical(name)
    spec = TERRAINS[key]
    resolved = dict(spec.defaults)
    for k, v in (params or {}).items():
        if k not in spec.defaults:
            takes = ", ".join(spec.defaults) or "no parameters"
            raise ValueError(f"terrain {key!r} takes {takes}; got {k!r}")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"terrain parameter {k!r} must be a positive number, got {v!r}")
        resolved[k] = float(v)
    if direction is None:
        direction = spec.direction
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return Terrain(key, resolved, direction)
