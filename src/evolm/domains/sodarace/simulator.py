"""Headless Box2D simulation of a walker: how far its centre of mass moves.

The physics world (pybox2d, the ``box2d`` wheel) is in metres; walker units map to it at
:data:`METRES_PER_UNIT` (a 10-unit walker is 1 m tall). Everything returned is in units.

* **Joints** are circles of radius :data:`JOINT_RADIUS` units and 1 kg each, with fixed rotation.
  They collide with the terrain (friction :data:`FRICTION`, no bounce) but not with each other.
* **Bones** (amplitude 0) are rigid Box2D distance joints: their length stays ``L0``, the
  distance between the joints as built.
* **Muscles** are soft Box2D distance joints, damped springs (:data:`MUSCLE_SPRING_HZ` Hz,
  damping ratio :data:`MUSCLE_DAMPING`) whose rest length is set before every step so that at
  time ``t`` it is ``L(t) = L0 * (1 + a * sin(2 * pi * f * t + phase))``. A muscle pulls its
  joints towards ``L(t)`` with a finite force, so a walker moves only by pushing on the ground
  (a muscle driven as a rigid constraint would teleport its joints through Box2D's position
  correction, and speeds would then depend on solver iterations). An unloaded muscle at the
  default ``f = 1`` Hz follows ``L(t)`` to within 1% in amplitude and about 0.16 rad of phase
  lag. Muscles and bones attach at joint centres and collide with nothing.
* **Time**: fixed steps of 1/60 s, 8 velocity and 3 position iterations, gravity 9.81 m/s^2.
* **Spawn and settle**: the walker is placed with its bounding box centred on ``x = 0`` and its
  lowest joint resting on the ground. During the settle window (``settle_seconds``) gravity
  brings it to rest while each muscle moves smoothly, over the first half of the window, from
  its built length to ``L(0) = L0 * (1 + a * sin(phase))``, so the gait starts without a kick.
  The muscle clock ``t`` starts at 0 when measurement starts.
* **Measurement**: ``dx`` is the centre of mass's x at the end of ``sim_seconds`` minus its x at
  the end of the settle window. The centre of mass is the mean of the joint positions (joints
  have equal masses; muscles are massless).

Given the same walker, terrain and configuration the result is identical on every run: Box2D
is deterministic, nothing here is random, and the muscle lengths use only scalar ``math.sin``
and IEEE multiply-adds, so they are bit-identical on every machine. A joint faster than
:data:`MAX_SPEED` or a position that is not finite ends the simulation with
:class:`SimulationError` (the physics blew up).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from evolm.domains.sodarace.terrains import Terrain, TerrainGeometry
from evolm.domains.sodarace.walker import Walker

__all__ = [
    "FRICTION",
    "GRAVITY",
    "JOINT_RADIUS",
    "MAX_SPEED",
    "METRES_PER_UNIT",
    "MUSCLE_DAMPING",
    "MUSCLE_SPRING_HZ",
    "REST_HEIGHT",
    "STEP_HZ",
    "SimConfig",
    "SimResult",
    "SimulationError",
    "Trajectory",
    "box2d",
    "simulate",
    "spawn_positions",
]

METRES_PER_UNIT = 0.1
"""Scale from walker units to the physics world's metres."""
JOINT_RADIUS = 0.5
"""Radius of a joint's collision circle, in units."""
REST_HEIGHT = JOINT_RADIUS + 0.05
"""Height of a joint's centre resting on the ground, in units: Box2D keeps a circle 0.005 m
(``b2_polygonRadius - b2_linearSlop``) above the ground's surface."""
JOINT_MASS = 1.0
"""Mass of a joint, kg."""
FRICTION = 1.0
"""Friction coefficient of joints and terrain."""
GRAVITY = 9.81
"""m/s^2, downwards."""
STEP_HZ = 60
"""Physics steps per simulated second."""
MUSCLE_SPRING_HZ = 10.0
"""Natural frequency of a muscle's spring (Box2D ``frequencyHz``)."""
MUSCLE_DAMPING = 0.7
"""Damping ratio of a muscle's spring."""
VELOCITY_ITERATIONS = 8
POSITION_ITERATIONS = 3
MAX_SPEED = 1000.0
"""units/s (100 m/s): a joint faster than this means the physics blew up."""
_SPEED_CHECK_EVERY = 30
"""Steps between checks of the joints' speeds."""
_BLOCK = 64
"""Steps of muscle lengths computed at once."""


class SimulationError(RuntimeError):
    """The physics blew up (a joint too fast, or a position not finite)."""


@dataclass(frozen=True)
class SimConfig:
    """How long and how fast to simulate.

    Attributes:
        sim_seconds: measured simulated time, after the settle window.
        settle_seconds: settle window before measurement starts.
        muscle_hz: oscillation frequency ``f`` of every muscle.
    """

    sim_seconds: float = 10.0
    settle_seconds: float = 1.0
    muscle_hz: float = 1.0

    def __post_init__(self) -> None:
        for name in ("sim_seconds", "settle_seconds", "muscle_hz"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if self.sim_seconds <= 0 or self.sim_seconds > 600:
            raise ValueError(f"sim_seconds must be in (0, 600], got {self.sim_seconds}")
        if self.settle_seconds < 0 or self.settle_seconds > 60:
            raise ValueError(f"settle_seconds must be in [0, 60], got {self.settle_seconds}")
        if self.muscle_hz <= 0 or self.muscle_hz > 3:
            raise ValueError(
                f"muscle_hz must be in (0, 3], got {self.muscle_hz}; faster muscles would "
                f"approach their springs' {MUSCLE_SPRING_HZ:g} Hz natural frequency"
            )

    @property
    def settle_steps(self) -> int:
        return round(self.settle_seconds * STEP_HZ)

    @property
    def sim_steps(self) -> int:
        return max(1, round(self.sim_seconds * STEP_HZ))


@dataclass(frozen=True)
class Trajectory:
    """Joint positions sampled during a simulation.

    Attributes:
        times: ``(k,)`` seconds relative to the start of measurement (negative while settling).
        positions: ``(k, joints, 2)`` positions in units.
    """

    times: np.ndarray
    positions: np.ndarray


@dataclass(frozen=True)
class SimResult:
    """Outcome of :func:`simulate`; positions in units.

    Attributes:
        dx: displacement of the centre of mass along x over the measured time (right positive).
        start: centre of mass ``(x, y)`` when measurement started.
        end: centre of mass ``(x, y)`` at the end.
        steps: physics steps taken (settle and measurement).
        spawn: ``(joints, 2)`` joint positions as placed in the world.
        terrain: the terrain's geometry around the spawned walker.
        trajectory: sampled positions when recording was asked for, else None.
    """

    dx: float
    start: tuple[float, float]
    end: tuple[float, float]
    steps: int
    spawn: np.ndarray
    terrain: TerrainGeometry
    trajectory: Trajectory | None = None


def spawn_positions(walker: Walker) -> np.ndarray:
    """``(joints, 2)`` positions in units: bounding box centred on ``x = 0``, lowest joint
    resting on the ground (its centre at ``y = REST_HEIGHT``)."""
    pts = np.asarray(walker.joints, dtype=np.float64).reshape(-1, 2)
    out = pts.copy()
    out[:, 0] -= (pts[:, 0].min() + pts[:, 0].max()) / 2.0
    out[:, 1] -= pts[:, 1].min() - REST_HEIGHT
    return out


def box2d() -> Any:
    """The ``Box2D.b2`` module (imported on first use; SWIG's import warnings silenced)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from Box2D import b2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Sodarace needs Box2D: pip install box2d==2.3.10") from exc
    return b2


def _build_terrain(world: Any, geometry: TerrainGeometry) -> None:
    b2 = box2d()
    s = METRES_PER_UNIT
    body = world.CreateStaticBody()
    chain = [(x * s, y * s) for x, y in geometry.ground]
    body.CreateFixture(shape=b2.chainShape(vertices_chain=chain), friction=FRICTION)
    for block in geometry.blocks:
        body.CreatePolygonFixture(vertices=[(x * s, y * s) for x, y in block], friction=FRICTION)


def simulate(
    walker: Walker,
    terrain: Terrain,
    config: SimConfig | None = None,
    *,
    record_fps: float | None = None,
) -> SimResult:
    """Simulate ``walker`` on ``terrain`` (see the module docstring for the model).

    Args:
        walker: a walker with no :meth:`~Walker.problems`.
        terrain: where to simulate it.
        config: durations and muscle frequency; default :class:`SimConfig`.
        record_fps: sample joint positions this many times per simulated second (None: don't).

    Returns:
        The displacement, start and end centre of mass, and the trajectory if asked for.

    Raises:
        ValueError: the walker is invalid (call :meth:`Walker.problems` first for reasons).
        SimulationError: the physics blew up.
    """
    b2 = box2d()
    config = config or SimConfig()
    problems = walker.problems(limit=1)
    if problems:
        raise ValueError(f"invalid walker: {problems[0]}")
    s = METRES_PER_UNIT
    spawn = spawn_positions(walker)
    geometry = terrain.geometry(float(spawn[:, 0].min()), float(spawn[:, 0].max()))

    world = b2.world(gravity=(0.0, -GRAVITY))
    world.SetAllowSleeping(False)  # a body at rest must still feel its muscles
    _build_terrain(world, geometry)
    radius = JOINT_RADIUS * s
    density = JOINT_MASS / (math.pi * radius * radius)
    bodies = []
    for x, y in spawn:
        body = world.CreateDynamicBody(position=(x * s, y * s), fixedRotation=True)
        body.CreateCircleFixture(
            radius=radius,
            density=density,
            friction=FRICTION,
            restitution=0.0,
            categoryBits=0x0002,
            maskBits=0x0001,
        )
        bodies.append(body)

    active = []
    for m in walker.muscles:
        a, b = bodies[m.j0], bodies[m.j1]
        joint = world.CreateDistanceJoint(
            bodyA=a,
            bodyB=b,
            anchorA=a.position,
            anchorB=b.position,
            collideConnected=False,
            frequencyHz=0.0 if m.is_bone else MUSCLE_SPRING_HZ,
            dampingRatio=MUSCLE_DAMPING,
        )
        if not m.is_bone:
            active.append((joint, joint.length, m.effective_amplitude, m.phase))
    joints = [j for j, _, _, _ in active]
    rest = np.array([r for _, r, _, _ in active], dtype=np.float64)
    amp = np.array([a for _, _, a, _ in active], dtype=np.float64)
    # sin(w t + phase) = sin(w t) cos(phase) + cos(w t) sin(phase): only scalar libm calls and
    # IEEE multiply-adds, so the lengths are bit-identical on every machine (numpy's vectorised
    # sin may use CPU-specific SIMD code)
    amp_cos = rest * amp * np.array([math.cos(p) for _, _, _, p in active], dtype=np.float64)
    amp_sin = rest * amp * np.array([math.sin(p) for _, _, _, p in active], dtype=np.float64)
    at_zero = rest + amp_sin

    dt = 1.0 / STEP_HZ
    settle, steps = config.settle_steps, config.sim_steps
    omega = 2.0 * math.pi * config.muscle_hz
    every = None if not record_fps else max(1, round(STEP_HZ / record_fps))
    times: list[float] = []
    frames: list[list[tuple[float, float]]] = []

    def positions() -> list[tuple[float, float]]:
        return [(b.position.x / s, b.position.y / s) for b in bodies]

    # State i (i = 0 at spawn) is at time (i - settle) * dt. Before the step from state i to
    # state i + 1 every muscle's rest length is set to its value for state i + 1: L(t) while
    # measuring, a ramp from L0 to L(0) while settling.
    start = (0.0, 0.0)
    limit = MAX_SPEED * s
    rows = _rest_lengths(rest, at_zero, amp_cos, amp_sin, settle, steps, omega)
    for i in range(settle + steps + 1):
        if i % _SPEED_CHECK_EVERY == 0 or i == settle + steps:
            fastest = max(b.linearVelocity.length for b in bodies)
            if not fastest <= limit:  # catches NaN too
                raise SimulationError(
                    f"the physics blew up at t = {(i - settle) * dt:.2f} s (a joint moving at "
                    f"{fastest / s:.3g} units/s)"
                )
        if every is not None and i % every == 0:
            times.append((i - settle) * dt)
            frames.append(positions())
        if i == settle:
            start = _centre(positions())
        if i == settle + steps:
            break
        if joints:
            for joint, length in zip(joints, next(rows), strict=True):
                joint.length = length
        world.Step(dt, VELOCITY_ITERATIONS, POSITION_ITERATIONS)
    final = positions()
    end = _centre(final)
    if not np.all(np.isfinite(final)):
        raise SimulationError("the physics blew up (positions not finite)")
    trajectory = None
    if every is not None:
        trajectory = Trajectory(np.array(times), np.array(frames, dtype=np.float64))
    return SimResult(
        dx=end[0] - start[0],
        start=start,
        end=end,
        steps=settle + steps,
        spawn=spawn,
        terrain=geometry,
        trajectory=trajectory,
    )


def _rest_lengths(
    rest: np.ndarray,
    at_zero: np.ndarray,
    amp_cos: np.ndarray,
    amp_sin: np.ndarray,
    settle: int,
    steps: int,
    omega: float,
) -> Iterator[list[float]]:
    """The muscles' rest lengths before each step, computed a block of steps at a time.

    Settle step ``i`` ramps linearly from ``rest`` to ``at_zero`` over ``settle // 2`` steps;
    measured step ``k`` (0-based) sets ``L((k + 1) * dt)``. Each entry is the same IEEE
    arithmetic as ``rest + sin(a) * amp_cos + cos(a) * amp_sin`` for one step.
    """
    dt = 1.0 / STEP_HZ
    ramp = max(1, settle // 2)
    weights = np.array([min(1.0, (i + 1) / ramp) for i in range(settle)], dtype=np.float64)
    yield from (rest + weights[:, None] * (at_zero - rest)).tolist()
    for first in range(1, steps + 1, _BLOCK):
        angles = [omega * k * dt for k in range(first, min(first + _BLOCK, steps + 1))]
        sines = np.array([math.sin(a) for a in angles], dtype=np.float64)[:, None]
        cosines = np.array([math.cos(a) for a in angles], dtype=np.float64)[:, None]
        yield from (rest + sines * amp_cos + cosines * amp_sin).tolist()


def _centre(points: list[tuple[float, float]]) -> tuple[float, float]:
    arr = np.asarray(points, dtype=np.float64)
    return float(arr[:, 0].mean()), float(arr[:, 1].mean())
