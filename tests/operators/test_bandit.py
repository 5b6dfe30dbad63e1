"""The arm selector: fixed mixes, UCB1 and Thompson convergence, cost awareness, forgetting."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from evolm.operators.bandit import Selector, make_selector


def simulate(
    sel: Selector,
    rates: list[float],
    *,
    costs: list[float] | None = None,
    batches: int = 150,
    batch: int = 8,
    seed: int = 0,
) -> list[int]:
    """Run ``batches`` batches against Bernoulli arms; return every choice in order."""
    rng = np.random.default_rng(seed)
    world = np.random.default_rng(seed + 1000)
    chosen: list[int] = []
    for _ in range(batches):
        arms = sel.choose(batch, rng)
        chosen += arms
        rows = []
        for arm in sorted(set(arms)):
            n = arms.count(arm)
            reward = float(world.binomial(n, rates[arm]))
            cost = n * (costs[arm] if costs else 0.0)
            rows.append((arm, float(n), reward, cost))
        sel.update(rows)
    return chosen


@pytest.mark.parametrize("kind", ["ucb1", "thompson"])
def test_learning_selectors_converge_to_the_best_arm(kind: str) -> None:
    sel = Selector(["a", "b", "c", "d"], kind)
    chosen = simulate(sel, [0.05, 0.2, 0.6, 0.3])
    late = Counter(chosen[-400:])
    assert late[2] / 400 > 0.7, late
    assert sel.stats[2].pulls == max(s.pulls for s in sel.stats)


def test_fixed_mix_follows_weights_and_never_learns() -> None:
    sel = Selector(["a", "b", "c"], "fixed", weights=[2, 1, 1])
    chosen = simulate(sel, [0.0, 0.0, 1.0], batches=500)
    freq = np.bincount(chosen, minlength=3) / len(chosen)
    assert np.allclose(freq, [0.5, 0.25, 0.25], atol=0.02)


def test_ucb_spreads_one_batch_over_unplayed_arms() -> None:
    sel = Selector(["a", "b", "c"], "ucb1")
    assert sorted(sel.choose(3, np.random.default_rng(0))) == [0, 1, 2]
    assert Counter(sel.choose(9, np.random.default_rng(0))) == {0: 3, 1: 3, 2: 3}


def test_cost_aware_prefers_the_cheaper_of_equally_good_arms() -> None:
    for kind in ("ucb1", "thompson"):
        plain = simulate(Selector(["dear", "cheap"], kind), [0.5, 0.5], costs=[10.0, 1.0])
        aware = simulate(
            Selector(["dear", "cheap"], kind, cost_aware=True), [0.5, 0.5], costs=[10.0, 1.0]
        )
        share_plain = Counter(plain[-400:])[1] / 400
        share_aware = Counter(aware[-400:])[1] / 400
        assert share_aware > 0.8 and share_aware > share_plain + 0.2, (kind, share_plain)


def test_cost_aware_does_not_divide_by_zero_for_free_arms() -> None:
    # A free arm is charged 5 % of the mean cost (here 0.025): 0.02 insertions per candidate is
    # 0.8 per unit, better than the paid arm's 0.3 per unit; 0.002 is 0.08, worse.
    for free_rate, free_wins in ((0.02, True), (0.002, False)):
        sel = Selector(["llm", "gp"], "ucb1", cost_aware=True)
        chosen = simulate(sel, [0.3, free_rate], costs=[1.0, 0.0], batches=300)
        assert (Counter(chosen[-800:])[1] > 400) is free_wins, free_rate


def test_window_lets_the_choice_follow_a_change() -> None:
    rates = [0.7, 0.1]
    for window, expect_switch in ((10, True), (None, False)):
        sel = Selector(["a", "b"], "thompson", window=window)
        simulate(sel, rates, batches=150)
        chosen = simulate(sel, rates[::-1], batches=40, seed=5)
        switched = Counter(chosen[-160:])[1] / 160 > 0.7
        assert switched is expect_switch


def test_same_generator_same_choices() -> None:
    def run() -> list[int]:
        return simulate(Selector(["a", "b", "c"], "thompson"), [0.2, 0.4, 0.3], batches=30)

    assert run() == run()


def test_one_arm_uses_no_randomness() -> None:
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert Selector(["only"], "thompson").choose(5, rng) == [0] * 5
    assert rng.bit_generator.state == state


def test_state_reports_totals() -> None:
    sel = Selector(["a", "b"], "ucb1")
    sel.update([(0, 4.0, 1.0, 10.0), (1, 2.0, 2.0, 0.0)])
    st = sel.state()
    assert st["a"] == {"pulls": 4.0, "reward": 1.0, "cost": 10.0, "mean": 0.25}
    assert st["b"]["mean"] == 1.0


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((["a"], "greedy"), {}, "unknown selector 'greedy'"),
        (([], "fixed"), {}, "at least one arm"),
        ((["a", "a"], "fixed"), {}, "unique"),
        ((["a", "b"], "fixed"), {"weights": [1]}, "2 finite numbers"),
        ((["a", "b"], "fixed"), {"weights": [0, 0]}, "not all be zero"),
        ((["a"], "ucb1"), {"c": -1.0}, "c must be >= 0"),
        ((["a"], "thompson"), {"prior": (0.0, 1.0)}, "positive"),
        ((["a"], "thompson"), {"window": 0}, "window"),
        ((["a"], "fixed"), {"bogus": 1}, "bad parameters"),
    ],
)
def test_bad_parameters_are_named(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_selector(*args, **kwargs)


def test_bad_updates_are_refused() -> None:
    sel = Selector(["a"], "ucb1")
    with pytest.raises(ValueError, match="out of range"):
        sel.update([(3, 1.0, 0.0, 0.0)])
    with pytest.raises(ValueError, match="reward must be >= 0"):
        sel.update([(0, 1.0, float("nan"), 0.0)])
