"""Choosing an operator (and a model) for each candidate: a fixed mix, UCB1 or Thompson sampling.

An *arm* is one (operator, model) pair, e.g. ``elm_diff@SmolLM2-135M`` or ``gp`` (LLM-free
operators have no model). For every prompt the engine asks a :class:`Selector` for an arm; when
the batch is told, each arm is rewarded with the number of its candidates that entered the
archive (``new`` or ``improved``), which is what the operator is for.

* ``fixed``: draw arms in proportion to their configured weights; never learns.
* ``ucb1`` (Auer et al. 2002): the arm maximising ``mean + c * sqrt(ln N / n)``, where ``mean`` is
  the arm's insertion rate, ``n`` its pulls and ``N`` all pulls. Arms never pulled come first.
  Because a whole batch is chosen before any of it is rewarded, each choice inside a batch counts
  as a *virtual pull* (with the arm's current mean as its reward) for the later choices of the
  same batch, so one batch spreads over the promising arms instead of piling on one.
* ``thompson``: each arm's insertion rate has a Beta(``prior_a`` + insertions,
  ``prior_b`` + misses) posterior; every choice samples each posterior and takes the largest.

``cost_aware = True`` turns the rate into insertions per unit of cost: the mean (UCB, whose
exploration bonus is left as it is) or the posterior sample (Thompson) is divided by the arm's
mean cost per candidate relative to the mean over all arms. Cost is the USD price of the call
when prices are configured, otherwise its tokens (in + out); LLM-free arms cost nothing and are
charged a floor of 5 % of the mean cost, so they are favoured but not infinitely. ``window``
(optional) makes the statistics forget: only the last ``window`` batches of rewards count, which
lets the choice follow operators whose usefulness changes during a run.

All randomness comes from the generator the caller passes, and rewards are applied per batch in
batch order, so the choices are a pure function of the run's seed and its history (exact resume
replays the updates from the stored step events).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from evolm.registry import Registry

__all__ = [
    "SELECTORS",
    "ArmStats",
    "FixedSelector",
    "Selector",
    "ThompsonSelector",
    "UCB1Selector",
    "make_selector",
]

_KINDS = ("fixed", "ucb1", "thompson")
_FREE_FLOOR = 0.05


@dataclass
class ArmStats:
    """Totals of one arm: candidates (pulls), insertions (reward) and cost."""

    pulls: float = 0.0
    reward: float = 0.0
    cost: float = 0.0

    @property
    def mean(self) -> float:
        return self.reward / self.pulls if self.pulls > 0 else 0.0


class Selector:
    """Chooses arms for a batch and learns from the batch's rewards.

    Args:
        arms: arm labels, in a fixed order (indices refer to it).
        kind: ``"fixed"``, ``"ucb1"`` or ``"thompson"`` (a subclass that overrides
            :meth:`choose` may name its own).
        weights: relative share of each arm for ``fixed`` (default uniform); ignored otherwise.
        c: UCB1 exploration constant.
        prior: Thompson ``(a, b)`` Beta prior of every arm's insertion rate.
        cost_aware: divide by the arm's relative cost (see the module docstring).
        window: if set, only the last ``window`` updates (batches) count.

    Raises:
        ValueError: unknown kind, no arms, repeated labels, bad weights, ``c < 0``, a prior
            that is not positive, or ``window < 1``.
    """

    def __init__(
        self,
        arms: Sequence[str],
        kind: str = "fixed",
        *,
        weights: Sequence[float] | None = None,
        c: float = math.sqrt(2.0),
        prior: tuple[float, float] = (1.0, 1.0),
        cost_aware: bool = False,
        window: int | None = None,
    ) -> None:
        if kind not in _KINDS and type(self).choose is Selector.choose:
            raise ValueError(f"unknown selector {kind!r}; choose one of {', '.join(SELECTORS)}")
        self.arms = tuple(arms)
        if not self.arms:
            raise ValueError("a selector needs at least one arm")
        if len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arm labels must be unique, got {list(self.arms)}")
        w = np.ones(len(self.arms)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.arms),) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(
                f"weights must be {len(self.arms)} finite numbers >= 0, got {list(np.ravel(w))}"
            )
        if w.sum() <= 0:
            raise ValueError("weights must not all be zero")
        if not (math.isfinite(c) and c >= 0):
            raise ValueError(f"UCB1 exploration constant c must be >= 0, got {c!r}")
        a, b = prior
        if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"Thompson prior must be two positive numbers, got {prior!r}")
        if window is not None and (isinstance(window, bool) or window < 1):
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        self.kind = kind
        self.weights = w / w.sum()
        self.c = float(c)
        self.prior = (float(a), float(b))
        self.cost_aware = bool(cost_aware)
        self.window = window
        self.stats = [ArmStats() for _ in self.arms]
        self._history: deque[list[tuple[int, float, float, float]]] = deque()

    def __len__(self) -> int:
        return len(self.arms)

    # -- learning -------------------------------------------------------------------------
    def update(self, rows: Sequence[tuple[int, float, float, float]]) -> None:
        """Apply one batch: rows of ``(arm, pulls, reward, cost)``.

        Raises:
            ValueError: an arm index out of range or a negative or non-finite number.
        """
        batch = []
        for arm, pulls, reward, cost in rows:
            if not 0 <= arm < len(self.arms):
                raise ValueError(f"arm index {arm} out of range (0..{len(self.arms) - 1})")
            for name, v in (("pulls", pulls), ("reward", reward), ("cost", cost)):
                if not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"arm {self.arms[arm]!r}: {name} must be >= 0, got {v!r}")
            batch.append((int(arm), float(pulls), float(reward), float(cost)))
            self._add(int(arm), float(pulls), float(reward), float(cost), +1)
        if self.window is not None:
            self._history.append(batch)
            while len(self._history) > self.window:
                for arm, pulls, reward, cost in self._history.popleft():
                    self._add(arm, pulls, reward, cost, -1)

    def _add(self, arm: int, pulls: float, reward: float, cost: float, sign: int) -> None:
        s = self.stats[arm]
        s.pulls = max(s.pulls + sign * pulls, 0.0)
        s.reward = max(s.reward + sign * reward, 0.0)
        s.cost = max(s.cost + sign * cost, 0.0)

    # -- choosing -------------------------------------------------------------------------
    def _cost_factors(self) -> np.ndarray:
        """Each arm's mean cost per pull over the mean of all arms' (1 where unknown)."""
        per = np.array([s.cost / s.pulls if s.pulls > 0 else np.nan for s in self.stats])
        known = per[np.isfinite(per)]
        overall = float(known.mean()) if known.size else 0.0
        if overall <= 0:
            return np.ones(len(self.arms))
        per = np.where(np.isfinite(per), per, overall)
        return np.maximum(per, _FREE_FLOOR * overall) / overall

    def choose(self, n: int, rng: np.random.Generator) -> list[int]:
        """Arms for the next ``n`` prompts of a batch (indices into :attr:`arms`)."""
        if n <= 0:
            return []
        k = len(self.arms)
        if k == 1:
            return [0] * n
        if self.kind == "fixed":
            return [int(i) for i in rng.choice(k, size=n, p=self.weights)]
        factors = self._cost_factors() if self.cost_aware else np.ones(k)
        if self.kind == "thompson":
            a = self.prior[0] + np.array([s.reward for s in self.stats])
            b = self.prior[1] + np.array([max(s.pulls - s.reward, 0.0) for s in self.stats])
            draws = rng.beta(a, b, size=(n, k)) / factors
            return [int(np.argmax(row)) for row in draws]
        pulls = np.array([s.pulls for s in self.stats], dtype=np.float64)
        means = np.array([s.mean for s in self.stats], dtype=np.float64)
        out = []
        for _ in range(n):
            unplayed = np.flatnonzero(pulls <= 0)
            if unplayed.size:
                arm = int(unplayed[rng.integers(unplayed.size)])
            else:
                bonus = self.c * np.sqrt(math.log(pulls.sum()) / pulls)
                index = means / factors + bonus
                best = np.flatnonzero(index >= index.max() - 1e-12)
                arm = int(best[rng.integers(best.size)])
            pulls[arm] += 1.0  # a virtual pull at the arm's current mean
            out.append(arm)
        return out

    # -- reporting ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Per-arm totals for events and ``evolm status``."""
        return {
            label: {"pulls": s.pulls, "reward": s.reward, "cost": s.cost, "mean": s.mean}
            for label, s in zip(self.arms, self.stats, strict=True)
        }


class _BuiltinSelector(Selector):
    """A built-in kind as its own class, so the selector registry maps names to classes."""

    kind_name = "fixed"

    def __init__(
        self,
        arms: Sequence[str],
        *,
        weights: Sequence[float] | None = None,
        c: float = math.sqrt(2.0),
        prior: tuple[float, float] = (1.0, 1.0),
        cost_aware: bool = False,
        window: int | None = None,
    ) -> None:
        super().__init__(
            arms,
            self.kind_name,
            weights=weights,
            c=c,
            prior=prior,
            cost_aware=cost_aware,
            window=window,
        )


class FixedSelector(_BuiltinSelector):
    """``fixed``: arms in proportion to their weights."""

    kind_name = "fixed"


class UCB1Selector(_BuiltinSelector):
    """``ucb1``: the arm with the highest upper confidence bound."""

    kind_name = "ucb1"


class ThompsonSelector(_BuiltinSelector):
    """``thompson``: the arm with the largest draw from its Beta posterior."""

    kind_name = "thompson"


SELECTORS: Registry[type[Selector]] = Registry(
    "selector",
    {
        "fixed": "evolm.operators.bandit:FixedSelector",
        "ucb1": "evolm.operators.bandit:UCB1Selector",
        "thompson": "evolm.operators.bandit:ThompsonSelector",
    },
    base=Selector,
    skip=("arms",),
)
"""Selector classes by kind name; a user selector is ``package.module:Class``, a
:class:`Selector` subclass built as ``Class(arms, **params)`` that overrides
:meth:`~Selector.choose` (and may override :meth:`~Selector.update`)."""


def make_selector(arms: Sequence[str], kind: str = "fixed", **params: Any) -> Selector:
    """Build the selector ``kind`` (a name in :data:`SELECTORS` or ``package.module:Class``);
    bad parameters raise ``ValueError`` naming them."""
    cls = SELECTORS.get(kind)
    try:
        return cls(arms, **params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for selector {kind!r}: {exc}") from exc
