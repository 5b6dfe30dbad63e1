"""Sodarace: evolve Python programs that build 2-D walking robots (ELM's main domain).

A program defines ``make_walker()``, which builds a robot of joints and muscles with
:func:`walker_creator` and returns it (Lehman et al. 2022, "Evolution through Large Models",
section 4). The domain checks the robot (:meth:`Walker.problems`), simulates it with Box2D on a
terrain (:mod:`~evolm.domains.sodarace.simulator`, :mod:`~evolm.domains.sodarace.terrains`) and
scores how far its centre of mass moves. The behaviour descriptors are the robot's height, width
and mass as built, so the archive keeps the best walker of every body shape.

The domain is two-phase (``scoring = "separate"``): :meth:`SodaraceDomain.run` builds the walker
in the program's sandboxed child and sends back its plain description (joints and muscles, see
:meth:`Walker.to_dict`); :meth:`SodaraceDomain.score` validates that description and simulates
it in a process that never runs the program.

Programs run with ``walker_creator``, ``query_cppn``, ``np`` (numpy) and ``math`` already
defined; ``from evolm.domains.sodarace import walker_creator, query_cppn`` works too. See
docs/sodarace.md for the semantics, the calibration of the descriptor bounds and the figures.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

import numpy as np

from evolm.domains.base import Domain, DomainContext
from evolm.domains.program import ProgramFailure, call_program, load_function
from evolm.domains.sodarace.helpers import query_cppn
from evolm.domains.sodarace.random_walker import random_walker_program
from evolm.domains.sodarace.terrains import TERRAINS, Terrain, directional_fitness, make_terrain
from evolm.domains.sodarace.walker import (
    AMPLITUDE_LIMIT,
    MAX_AMPLITUDE,
    MAX_EXTENT,
    MAX_JOINTS,
    MAX_MUSCLES,
    MAX_MUSCLES_PER_JOINT,
    MIN_JOINT_DISTANCE,
    Muscle,
    Walker,
    WalkerCreator,
    WalkerError,
    walker_creator,
)
from evolm.types import DescriptorSpace, Evaluation, Status

__all__ = [
    "DESCRIPTOR_BOUNDS",
    "EXAMPLES",
    "SEEDS",
    "TERRAINS",
    "Muscle",
    "SodaraceDomain",
    "Terrain",
    "Walker",
    "WalkerCreator",
    "WalkerError",
    "example_code",
    "helper_code",
    "make_terrain",
    "query_cppn",
    "seed_code",
    "walker_creator",
]

SEEDS: tuple[str, ...] = ("square", "radial", "cppn_fixed", "cppn_mutable")
"""Names of the seed programs (files in ``seeds/``), in the order :meth:`seeds` returns them."""
EXAMPLES: tuple[str, ...] = ("wheel", "galloper", "runner")
"""Names of the example programs (files in ``examples/``)."""

DESCRIPTOR_BOUNDS: dict[str, tuple[float, float]] = {
    "height": (0.0, 12.0),
    "width": (0.0, 48.0),
    "mass": (0.0, 1800.0),
}
"""Default descriptor bounds (units), calibrated as docs/sodarace.md describes."""

_FUNCTION = "make_walker"


def seed_code(name: str) -> str:
    """Source text of seed ``name`` (one of :data:`SEEDS`)."""
    if name not in SEEDS:
        raise ValueError(f"unknown seed {name!r}; seeds: {', '.join(SEEDS)}")
    return resources.files(f"{__name__}.seeds").joinpath(f"{name}.py").read_text("utf-8")


def example_code(name: str) -> str:
    """Source text of example ``name`` (one of :data:`EXAMPLES`)."""
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; examples: {', '.join(EXAMPLES)}")
    return resources.files(f"{__name__}.examples").joinpath(f"{name}.py").read_text("utf-8")


def helper_code() -> str:
    """Source text of the helper code every program can use (``query_cppn``)."""
    return resources.files(__name__).joinpath("helpers.py").read_text("utf-8")


def _api_text(muscle_hz: float) -> str:
    period = f"{1 / muscle_hz:g} s"
    return (
        "# Already defined in every program: walker_creator, query_cppn (a grid builder),\n"
        "# numpy as np, math. (`from evolm.domains.sodarace import walker_creator` works too.)\n"
        "#\n"
        "# wc = walker_creator()\n"
        "# wc.add_joint(x, y) -> joint\n"
        "#     A point mass at (x, y): x to the right, y up, in units (1 unit = 10 cm).\n"
        f"#     Joints must be at least {MIN_JOINT_DISTANCE:g} apart.\n"
        "# wc.add_muscle(j0, j1, amplitude=0.0, phase=0.0)\n"
        "#     Connects two joints. Amplitude 0 makes a rigid bone. Otherwise it is a springy\n"
        "#     muscle pulling its joints towards the length\n"
        "#     L0 * (1 + amplitude * sin(2 * pi * t / T + phase)), where L0 is the distance\n"
        f"#     between the joints as built, t the time in seconds and T = {period}; the\n"
        f"#     amplitude is clipped to [-{MAX_AMPLITUDE:g}, {MAX_AMPLITUDE:g}] and the phase is "
        "in radians.\n"
        "# wc.get_walker() -> the finished robot, which make_walker() returns.\n"
        f"# Limits: {MAX_JOINTS} joints, {MAX_MUSCLES} muscles, {MAX_MUSCLES_PER_JOINT} muscles "
        f"on one joint, {MAX_EXTENT:g} units wide or tall.\n"
    )


class SodaraceDomain(Domain):
    """Evolve ``make_walker()`` programs; fitness is how far the walker moves.

    Args:
        terrain: one of :data:`TERRAINS` (``flat``, ``left-wall``, ``right-wall``, ``bumpy``,
            ``tunnel``; case-insensitive, ``_`` for ``-``).
        terrain_params: overrides of the terrain's parameters, e.g. ``{"height": 6.0}`` for
            ``tunnel`` (see :mod:`~evolm.domains.sodarace.terrains`).
        direction: ``any`` (fitness ``|dx|``), ``right`` (``max(dx, 0)``) or ``left``
            (``max(-dx, 0)``); None for the terrain's default.
        sim_seconds: measured simulated time.
        settle_seconds: settle window before measurement.
        muscle_hz: muscle oscillation frequency.
        descriptor_bounds: overrides of :data:`DESCRIPTOR_BOUNDS`, e.g.
            ``{"mass": [0, 400]}``.
        record_fps: when > 0, ``extras`` also holds the terrain geometry and the joint
            positions sampled this many times per simulated second (for viewing), and the
            walker unrounded. Without it, ``extras["walker"]`` holds the body (``joints`` and
            ``muscles`` as :meth:`Walker.to_dict`, rounded to 4 decimals) for pictures.

    Raises:
        ValueError: any parameter out of range (the message names it).
    """

    name = "sodarace"
    eval_timeout = 10.5
    qd_offset = 0.0
    scoring = "separate"
    fitness_bounds = (0.0, math.inf)

    def __init__(
        self,
        terrain: str = "flat",
        terrain_params: dict[str, float] | None = None,
        direction: str | None = None,
        sim_seconds: float = 10.0,
        settle_seconds: float = 1.0,
        muscle_hz: float = 1.0,
        descriptor_bounds: dict[str, list[float]] | None = None,
        record_fps: float = 0.0,
    ) -> None:
        from evolm.domains.sodarace.simulator import SimConfig, box2d

        # Load Box2D now, not at the first evaluation: a sandbox's fork server builds the domain
        # once and forks a child per program, so every child inherits it instead of importing it
        # (~15 ms, several times the cost of simulating a small walker) after its lockdown.
        box2d()
        self.terrain = make_terrain(terrain, terrain_params, direction)
        self.sim_config = SimConfig(
            sim_seconds=sim_seconds, settle_seconds=settle_seconds, muscle_hz=muscle_hz
        )
        bounds = dict(DESCRIPTOR_BOUNDS)
        for key, value in (descriptor_bounds or {}).items():
            if key not in bounds:
                raise ValueError(
                    f"descriptor_bounds: unknown descriptor {key!r}; descriptors: "
                    f"{', '.join(bounds)}"
                )
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"descriptor_bounds[{key!r}] must be [low, high], got {value!r}"
                ) from None
            bounds[key] = (lo, hi)
        self._space = DescriptorSpace(tuple(bounds), tuple(bounds.values()))
        if (
            isinstance(record_fps, bool)
            or not isinstance(record_fps, int | float)
            or not 0 <= record_fps <= 60
        ):
            raise ValueError(f"record_fps must be in [0, 60], got {record_fps!r}")
        self.record_fps = float(record_fps)
        cfg = self.sim_config
        # the largest walker takes about 0.06 s of CPU per simulated second; leave a wide margin
        self.eval_timeout = 5.0 + 0.5 * (cfg.sim_seconds + cfg.settle_seconds)

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return self._space

    def seeds(self) -> list[str]:
        return [seed_code(name) for name in SEEDS]

    def context(self) -> DomainContext:
        cfg = self.sim_config
        goal = {
            "any": "how far its centre of mass moves left or right",
            "right": "how far its centre of mass moves to the right",
            "left": "how far its centre of mass moves to the left",
        }[self.terrain.direction]
        description = (
            "Write a Python function `make_walker()` that takes no arguments and builds a 2-D "
            "walking robot ('Sodaracer') with walker_creator(): joints are point masses, "
            "muscles connect them and either stay rigid (bones) or stretch and shrink in a "
            "rhythm set by their amplitude and phase. The robot starts resting on "
            f"{self.terrain.description} and is simulated with 2-D physics and gravity for "
            f"{cfg.sim_seconds:g} seconds; the score is {goal}, in units. Good walkers use "
            "muscles out of phase with each other to push against the ground. Robots are also "
            "kept for being good among robots of their own height, width and mass, so varied "
            "body shapes are useful."
        )
        return DomainContext(
            description=description,
            function_name=_FUNCTION,
            api=_api_text(cfg.muscle_hz),
            # query_cppn's listing (600 tokens) only for parents that call it
            optional_api={"query_cppn": helper_code()},
            file_name="walker.py",
            random_program=self.random_program,
        )

    def random_program(self, rng: np.random.Generator) -> str:
        """A random ``make_walker()`` program (a cloud, ring or ladder body with random
        muscles; see :mod:`~evolm.domains.sodarace.random_walker`), for random search."""
        return random_walker_program(rng)

    def build(self, code: str, seed: int = 0) -> Walker | Evaluation:
        """Run ``code`` and return its walker, or the failed :class:`Evaluation` saying why.

        Runs untrusted code: call it only inside an evaluation worker. ``random`` and
        ``numpy.random`` are reseeded with ``seed`` first.
        """
        extras: dict[str, Any] = {"terrain": self.terrain.name}
        namespace = {
            "walker_creator": walker_creator,
            "query_cppn": query_cppn,
            "np": np,
            "math": math,
        }
        make_walker = load_function(code, _FUNCTION, seed, namespace, invalid=(WalkerError,))
        if isinstance(make_walker, ProgramFailure):
            return Evaluation.failure(make_walker.status, make_walker.error, extras=extras)

        def walker() -> Any:
            value = make_walker()
            return value.get_walker() if isinstance(value, WalkerCreator) else value

        value, failed = call_program(walker, invalid=(WalkerError,))
        if failed is not None:
            return Evaluation.failure(failed.status, failed.error, extras=extras)
        if not isinstance(value, Walker):
            return Evaluation.failure(
                Status.INVALID,
                f"{_FUNCTION}() returned {type(value).__name__}; return wc.get_walker()",
                extras=extras,
            )
        problems = value.problems()
        if problems:
            return Evaluation.failure(
                Status.INVALID, "invalid walker: " + "; ".join(problems), extras=extras
            )
        return value

    def run(self, code: str, seed: int = 0) -> dict[str, Any] | Evaluation:
        """Build the walker ``code`` describes: ``{"walker": Walker.to_dict()}``, or the failed
        evaluation saying why not (see :meth:`build`). Runs in the program's sandboxed child."""
        built = self.build(code, seed)
        if isinstance(built, Evaluation):
            return built
        return {"walker": built.to_dict()}

    def score(self, data: Any, seed: int = 0) -> Evaluation:
        """Simulate a walker and turn the result into an :class:`Evaluation`.

        ``data`` is what :meth:`run` returned (validated, since a program may forge it: joints
        and muscles within the builder's limits, finite numbers, valid joint indices, then
        :meth:`Walker.problems`; ``invalid`` with the reasons otherwise), or a :class:`Walker`
        built by trusted code, which is simulated as it is.
        """
        if isinstance(data, Walker):
            return self._simulate(data)
        walker = _walker_from_data(data)
        if isinstance(walker, str):
            return Evaluation.failure(
                Status.INVALID, f"invalid walker data: {walker}", extras=self._extras()
            )
        problems = walker.problems()
        if problems:
            return Evaluation.failure(
                Status.INVALID, "invalid walker: " + "; ".join(problems), extras=self._extras()
            )
        return self._simulate(walker)

    def _extras(self) -> dict[str, Any]:
        return {"terrain": self.terrain.name}

    def _simulate(self, walker: Walker) -> Evaluation:
        """Simulate a valid ``walker`` and turn the result into an :class:`Evaluation`."""
        from evolm.domains.sodarace.simulator import SimulationError, simulate

        extras: dict[str, Any] = {"terrain": self.terrain.name}
        try:
            result = simulate(
                walker, self.terrain, self.sim_config, record_fps=self.record_fps or None
            )
        except SimulationError as exc:
            return Evaluation.failure(Status.ERROR, str(exc), extras=extras)
        extras.update(
            dx=result.dx,
            joints=len(walker.joints),
            muscles=len(walker.muscles),
            active_muscles=walker.active_muscles,
            # the body, rounded, so a report can draw any stored walker without re-running it
            walker=_rounded(walker.to_dict()),
        )
        if result.trajectory is not None:
            extras.update(
                walker=walker.to_dict(),
                spawn=result.spawn.tolist(),
                terrain_geometry=result.terrain.to_dict(),
                times=result.trajectory.times.tolist(),
                frames=np.round(result.trajectory.positions, 4).tolist(),
                direction=self.terrain.direction,
            )
        return Evaluation(
            status=Status.OK,
            fitness=directional_fitness(result.dx, self.terrain.direction),
            descriptors=(walker.height, walker.width, walker.mass),
            extras=extras,
        )


def _rounded(walker: dict[str, Any]) -> dict[str, Any]:
    """``Walker.to_dict()`` with coordinates, amplitudes and phases rounded to 4 decimals (a
    drawing needs no more, and the run database stores one per evaluation)."""
    return {
        "joints": [[round(x, 4), round(y, 4)] for x, y in walker["joints"]],
        "muscles": [[a, b, round(amp, 4), round(ph, 4)] for a, b, amp, ph in walker["muscles"]],
    }


def _finite(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, int | float) and math.isfinite(x)


def _walker_from_data(data: Any) -> Walker | str:
    """The :class:`Walker` that ``{"walker": Walker.to_dict()}`` describes, or what is wrong."""
    if (
        not isinstance(data, dict)
        or set(data) != {"walker"}
        or not isinstance(data["walker"], dict)
    ):
        return 'expected {"walker": {"joints": [...], "muscles": [...]}}'
    d = data["walker"]
    joints, muscles = d.get("joints"), d.get("muscles")
    if (
        set(d) != {"joints", "muscles"}
        or not isinstance(joints, list)
        or not isinstance(muscles, list)
    ):
        return "the walker must have exactly a list of joints and a list of muscles"
    if len(joints) > MAX_JOINTS or len(muscles) > MAX_MUSCLES:
        return f"at most {MAX_JOINTS} joints and {MAX_MUSCLES} muscles are allowed"
    for j in joints:
        if not (isinstance(j, list) and len(j) == 2 and all(_finite(v) for v in j)):
            return "each joint must be [x, y] with finite numbers"
    n = len(joints)
    for m in muscles:
        if not (isinstance(m, list) and len(m) == 4):
            return "each muscle must be [j0, j1, amplitude, phase]"
        j0, j1, amplitude, phase = m
        if not all(type(j) is int and 0 <= j < n for j in (j0, j1)) or j0 == j1:
            return f"muscle joints {j0!r:.20}, {j1!r:.20} are not two joints of the walker"
        if not (_finite(amplitude) and _finite(phase)) or abs(amplitude) > AMPLITUDE_LIMIT:
            return (
                "muscle amplitude and phase must be finite numbers, the amplitude within "
                f"+-{AMPLITUDE_LIMIT:g}"
            )
    return Walker.from_dict(d)
