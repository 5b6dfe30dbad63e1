"""Sodarace physics: golden tests for OpenELM's defects, muscle semantics, terrains, determinism.

The pinned distances hold for the ``box2d`` 2.3.10 wheel on x86-64 with the simulator's
constants; walking is chaotic, so any change to the physics model moves them (update them and
docs/sodarace.md together).
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

import evolm.domains.sodarace.simulator as simulator
from evolm.domains.sodarace import (
    SodaraceDomain,
    Walker,
    example_code,
    make_terrain,
    seed_code,
    walker_creator,
)
from evolm.domains.sodarace.simulator import (
    JOINT_RADIUS,
    REST_HEIGHT,
    SimConfig,
    SimResult,
    simulate,
    spawn_positions,
)
from evolm.domains.sodarace.terrains import directional_fitness
from evolm.types import Status

FLAT = make_terrain("flat")

# Centre-of-mass displacement (units) in the default 1 s settle + 10 s run on flat ground.
PINNED_DX = {
    "square": -8.76947696460411,
    "wheel": -138.9574247901328,
    "galloper": 79.1543890039126,
}


def build(code: str) -> Walker:
    walker = SodaraceDomain().build(code)
    assert isinstance(walker, Walker), walker
    return walker


def bones_only_box(width: float, height: float) -> Walker:
    wc = walker_creator()
    c = [wc.add_joint(0, 0), wc.add_joint(width, 0), wc.add_joint(width, height)]
    c.append(wc.add_joint(0, height))
    for k in range(4):
        wc.add_muscle(c[k], c[(k + 1) % 4])
    wc.add_muscle(c[0], c[2])
    wc.add_muscle(c[1], c[3])
    return wc.get_walker()


def one_muscle(amplitude: float, phase: float, length: float = 10.0) -> Walker:
    wc = walker_creator()
    wc.add_muscle(wc.add_joint(0, 0), wc.add_joint(length, 0), amplitude, phase)
    return wc.get_walker()


def lengths(result: SimResult, a: int, b: int) -> np.ndarray:
    assert result.trajectory is not None
    pos = result.trajectory.positions
    return np.hypot(*(pos[:, a] - pos[:, b]).T)


def fit_sine(t: np.ndarray, y: np.ndarray, hz: float = 1.0) -> tuple[float, float, float]:
    """Amplitude, phase and offset of ``y ~ amp * sin(2 pi hz t + phase) + offset``."""
    w = 2 * math.pi * hz
    basis = np.c_[np.sin(w * t), np.cos(w * t), np.ones_like(t)]
    s, c, offset = np.linalg.lstsq(basis, y, rcond=None)[0]
    return float(math.hypot(s, c)), float(math.atan2(c, s)), float(offset)


# -- what OpenELM got wrong ----------------------------------------------------------------
def test_walker_spawns_resting_on_the_ground() -> None:
    # OpenELM spawned walkers ~150 units up and read fitness while they were still falling.
    walker = bones_only_box(10.0, 10.0)
    spawn = spawn_positions(walker)
    assert spawn[:, 1].min() == pytest.approx(REST_HEIGHT)
    assert spawn[:, 0].min() == pytest.approx(-spawn[:, 0].max())
    r = simulate(walker, FLAT, SimConfig(sim_seconds=2.0), record_fps=60)
    assert r.trajectory is not None
    drift = np.abs(r.trajectory.positions - spawn[None]).max()
    assert drift < 1e-3  # it neither falls nor sinks nor slides
    square = build(seed_code("square"))
    start = simulate(square, FLAT, SimConfig(sim_seconds=0.1)).start
    assert start[1] == pytest.approx(spawn_positions(square)[:, 1].mean(), abs=0.5)


@pytest.mark.parametrize(("width", "height"), [(2.0, 2.0), (10.0, 10.0), (60.0, 3.0), (150, 1)])
def test_walker_without_muscles_scores_zero(width: float, height: float) -> None:
    # OpenELM read fitness while the walker was still falling: it grew with the body's width.
    ev = SodaraceDomain().score(bones_only_box(width, height))
    assert ev.status is Status.OK
    assert ev.fitness is not None and ev.fitness < 1e-3
    assert ev.extras["active_muscles"] == 0


def test_walker_with_zero_amplitude_muscles_scores_zero() -> None:
    # amplitude 0 with a phase is still a bone (OpenELM made such springs oscillate)
    wc = walker_creator()
    c = [wc.add_joint(0, 0), wc.add_joint(10, 0), wc.add_joint(5, 8)]
    for k in range(3):
        wc.add_muscle(c[k], c[(k + 1) % 3], 0.0, 1.0 + k)
    ev = SodaraceDomain().score(wc.get_walker())
    assert ev.fitness is not None and ev.fitness < 1e-3


@pytest.mark.parametrize("name", sorted(PINNED_DX))
def test_known_walkers_move_a_pinned_distance(name: str) -> None:
    code = seed_code(name) if name == "square" else example_code(name)
    ev = SodaraceDomain().evaluate(code)
    assert ev.status is Status.OK, ev.error
    assert ev.extras["dx"] == pytest.approx(PINNED_DX[name], abs=1e-6)
    assert ev.fitness == pytest.approx(abs(PINNED_DX[name]), abs=1e-6)
    assert abs(ev.extras["dx"]) > 5.0  # it walks


def test_bones_stay_rigid_while_muscles_move() -> None:
    walker = build(seed_code("square"))
    r = simulate(walker, FLAT, SimConfig(sim_seconds=4.0), record_fps=60)
    spawn = spawn_positions(walker)
    for m in walker.muscles:
        rest = float(np.hypot(*(spawn[m.j0] - spawn[m.j1])))
        ratio = lengths(r, m.j0, m.j1) / rest
        if m.is_bone:
            # exact to the solver's tolerance, but for brief spikes when a joint hits the ground
            assert np.percentile(np.abs(ratio - 1), 95) < 2e-3
            assert np.abs(ratio - 1).max() < 0.1
        else:
            assert ratio.max() - ratio.min() > 0.3  # amplitude 0.4: it really moves


# -- muscle semantics -----------------------------------------------------------------------
def muscle_run(amplitude: float, phase: float, hz: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    r = simulate(
        one_muscle(amplitude, phase), FLAT, SimConfig(sim_seconds=4.0, muscle_hz=hz), record_fps=60
    )
    assert r.trajectory is not None
    t = r.trajectory.times
    keep = t >= 1.0  # after the start-up transient
    return t[keep], lengths(r, 0, 1)[keep] / 10.0 - 1.0


def test_amplitude_and_phase_act_as_documented() -> None:
    # L(t) = L0 (1 + a sin(2 pi f t + phase)); the spring lags by a small constant phase.
    fits = {}
    for a, phase in [(0.1, 0.0), (0.3, 0.0), (0.3, 1.0), (0.3, 2.5)]:
        t, y = muscle_run(a, phase)
        fits[(a, phase)] = fit_sine(t, y)
    for (a, _), (amp, _, offset) in fits.items():
        assert amp == pytest.approx(a, rel=0.03)
        assert abs(offset) < 0.01
    lag = fits[(0.3, 0.0)][1]
    assert -0.25 < lag < -0.05  # the documented lag of about 0.16 rad
    for phase in (1.0, 2.5):
        assert fits[(0.3, phase)][1] - lag == pytest.approx(phase, abs=0.02)


def test_negative_amplitude_is_half_a_cycle_of_phase() -> None:
    _, y1 = muscle_run(-0.3, 1.0)
    _, y2 = muscle_run(0.3, 1.0 + math.pi)
    assert np.abs(y1 - y2).max() < 1e-4


def test_amplitude_beyond_the_limit_is_clipped() -> None:
    _, y1 = muscle_run(0.5, 0.7)
    _, y2 = muscle_run(3.0, 0.7)
    np.testing.assert_array_equal(y1, y2)


def test_muscle_frequency_parameter() -> None:
    t, y = muscle_run(0.3, 0.0, hz=2.0)
    amp2, _, _ = fit_sine(t, y, hz=2.0)
    amp1, _, _ = fit_sine(t, y, hz=1.0)
    assert amp2 > 0.25 and amp1 < 0.05


def test_muscles_start_at_their_phase_after_the_settle_window() -> None:
    r = simulate(one_muscle(0.3, 1.0), FLAT, SimConfig(sim_seconds=0.5), record_fps=60)
    assert r.trajectory is not None
    at_zero = lengths(r, 0, 1)[np.argmin(np.abs(r.trajectory.times))]
    assert at_zero == pytest.approx(10.0 * (1 + 0.3 * math.sin(1.0)), rel=0.02)
    assert r.trajectory.times[0] == pytest.approx(-1.0)
    assert r.trajectory.times[-1] == pytest.approx(0.5)


# -- determinism ----------------------------------------------------------------------------
def test_simulation_is_deterministic() -> None:
    walker = build(seed_code("cppn_fixed"))
    runs = [simulate(walker, FLAT) for _ in range(3)]
    assert len({r.dx for r in runs}) == 1
    assert len({r.end for r in runs}) == 1


def test_same_result_in_the_sandbox() -> None:
    from evolm.sandbox import SandboxPool

    code = example_code("runner")
    local = SodaraceDomain(sim_seconds=3.0).evaluate(code, seed=5)

    async def remote() -> object:
        async with SandboxPool("sodarace", {"sim_seconds": 3.0}, workers=1) as pool:
            return await pool.evaluate(code, 5)

    ev = asyncio.run(remote())
    assert ev.status is Status.OK  # type: ignore[attr-defined]
    assert (ev.fitness, ev.descriptors) == (local.fitness, local.descriptors)  # type: ignore[attr-defined]


def test_unstable_physics_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulator, "MAX_SPEED", 1e-3)
    ev = SodaraceDomain(sim_seconds=1.0).evaluate(seed_code("square"))
    assert ev.status is Status.ERROR
    assert "physics blew up" in (ev.error or "")


# -- terrains -------------------------------------------------------------------------------
def test_directional_fitness() -> None:
    assert directional_fitness(-3.0, "any") == 3.0
    assert directional_fitness(-3.0, "right") == 0.0
    assert directional_fitness(4.0, "right") == 4.0
    assert directional_fitness(4.0, "left") == 0.0
    assert directional_fitness(-4.0, "left") == 4.0


def test_terrain_geometry() -> None:
    left, right = -5.0, 5.0
    (wall,) = make_terrain("left-wall").geometry(left, right).blocks
    assert max(x for x, _ in wall) == pytest.approx(left - 5.0)
    (wall,) = make_terrain("right-wall", {"gap": 2.0}).geometry(left, right).blocks
    assert min(x for x, _ in wall) == pytest.approx(right + 2.0)
    blocks = make_terrain("tunnel", {"height": 6.0}).geometry(left, right).blocks
    assert len(blocks) == 2 and all(min(y for _, y in b) == 6.0 for b in blocks)
    ground = make_terrain("bumpy", {"height": 2.0}).geometry(left, right).ground
    ys = np.array([y for _, y in ground])
    xs = np.array([x for x, _ in ground])
    assert ys.max() == pytest.approx(2.0) and ys.min() == 0.0
    assert np.all(ys[(xs >= left - 5.0) & (xs <= right + 5.0)] == 0.0)  # level under the walker
    assert np.all(np.diff(xs) > 0)
    assert make_terrain("flat").geometry(left, right).blocks == ()


def test_a_wall_stops_a_walker() -> None:
    walker = build(example_code("galloper"))  # walks right on flat ground
    flat = simulate(walker, FLAT)
    assert flat.dx > 20
    r = simulate(walker, make_terrain("right-wall"), record_fps=30)
    assert r.trajectory is not None
    wall_x = min(x for x, _ in r.terrain.blocks[0])
    assert r.trajectory.positions[:, :, 0].max() <= wall_x - JOINT_RADIUS + 0.05
    # facing a right wall the fitness counts leftward motion only
    left = SodaraceDomain(terrain="right-wall").score(walker)
    assert left.fitness == directional_fitness(left.extras["dx"], "left")
    # the same walker with a wall far behind it is not hindered
    behind = SodaraceDomain(terrain="left-wall", terrain_params={"gap": 30.0}).score(walker)
    assert behind.fitness == pytest.approx(flat.dx, rel=1e-6)


def test_walking_into_a_wall_scores_zero() -> None:
    walker = build(example_code("wheel"))  # rolls left on flat ground
    assert simulate(walker, FLAT).dx < -50
    ev = SodaraceDomain(terrain="left-wall").score(walker)
    assert ev.extras["dx"] < 0 and ev.fitness == 0.0


def test_a_tunnel_stops_a_tall_walker() -> None:
    walker = build(example_code("wheel"))  # 10 units tall, the tunnel is 8 units high
    flat = simulate(walker, FLAT).dx
    tunnel = SodaraceDomain(terrain="tunnel").score(walker)
    assert abs(tunnel.extras["dx"]) < 0.2 * abs(flat)
    higher = SodaraceDomain(terrain="tunnel", terrain_params={"height": 30.0}).score(walker)
    assert higher.extras["dx"] == pytest.approx(flat, rel=1e-6)  # the rock is never touched


def test_bumps_change_the_outcome() -> None:
    walker = build(example_code("runner"))
    flat = simulate(walker, FLAT).dx
    bumpy = simulate(walker, make_terrain("bumpy")).dx
    assert abs(bumpy) < abs(flat)
