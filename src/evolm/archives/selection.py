"""Parent selection over archive slots: a sum tree and the three strategies.

A *slot* is whatever an archive selects first: a cell of a grid, CVT or deep grid, or a member of
a population (which uses a :class:`SumTree` directly). :class:`SlotSelector` keeps, for a fixed
number of slots, the list of filled slots (for uniform selection in O(1)) and two
:class:`SumTree` s of weights (for fitness-proportional and curiosity selection in O(log N)), so
that neither ``add`` nor ``sample`` ever touches all slots.

Constants (all weights are relative, so only their ratios matter):

- :data:`FITNESS_FLOOR`: a slot's fitness weight is ``max(fitness - qd_offset, FITNESS_FLOOR)``,
  so slots at or below the offset keep a tiny, non-zero chance.
- :data:`CURIOSITY_INIT`, :data:`CURIOSITY_REWARD`, :data:`CURIOSITY_PENALTY`,
  :data:`CURIOSITY_FLOOR`: the curiosity score of `Cully & Demiris 2018
  <https://arxiv.org/abs/1708.09251>`_. A slot starts at ``CURIOSITY_INIT``; each
  time an offspring of a parent drawn from it is accepted into the archive its score gains
  ``CURIOSITY_REWARD``, each time one is rejected it gains ``CURIOSITY_PENALTY`` (a negative
  number), and it never drops below ``CURIOSITY_FLOOR`` so that no slot is starved for good.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = [
    "CURIOSITY_FLOOR",
    "CURIOSITY_INIT",
    "CURIOSITY_PENALTY",
    "CURIOSITY_REWARD",
    "FITNESS_FLOOR",
    "SlotSelector",
    "SumTree",
    "fitness_weight",
    "reward_curiosity",
]

FITNESS_FLOOR = 1e-9
CURIOSITY_INIT = 1.0
CURIOSITY_REWARD = 1.0
CURIOSITY_PENALTY = -0.5
CURIOSITY_FLOOR = 0.1


def fitness_weight(fitness: float, qd_offset: float) -> float:
    """Selection weight of a fitness: ``max(fitness - qd_offset, FITNESS_FLOOR)``."""
    return max(fitness - qd_offset, FITNESS_FLOOR)


def reward_curiosity(scores: SumTree, slots: Iterable[int], accepted: bool) -> None:
    """Add ``CURIOSITY_REWARD`` (accepted) or ``CURIOSITY_PENALTY`` to each slot's score.

    A slot listed twice is updated twice. Scores never fall below ``CURIOSITY_FLOOR``.
    """
    delta = CURIOSITY_REWARD if accepted else CURIOSITY_PENALTY
    for slot in slots:
        scores[slot] = max(scores[slot] + delta, CURIOSITY_FLOOR)


class SumTree:
    """Non-negative weights over ``capacity`` slots with O(log N) update and weighted draw.

    A binary segment tree of ``2 * leaves`` sums (``leaves`` is ``capacity`` rounded up to a
    power of two): leaf ``i`` sits at ``leaves + i`` and every inner node holds the sum of its two
    children, recomputed from them on each update, so the sums never drift however many updates
    are made. The nodes are one contiguous float64 array, read with ``ndarray.item``.

    Args:
        capacity: number of slots, at least 1. All weights start at 0.

    Raises:
        ValueError: ``capacity < 1``.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a sum tree needs capacity >= 1, got {capacity}")
        self._capacity = int(capacity)
        self._leaves = 1 << (self._capacity - 1).bit_length()
        self._tree = np.zeros(2 * self._leaves, dtype=np.float64)

    def __len__(self) -> int:
        return self._capacity

    @property
    def total(self) -> float:
        """Sum of all weights."""
        return float(self._tree.item(1))

    @property
    def weights(self) -> np.ndarray:
        """A ``(capacity,)`` float64 copy of the leaf weights."""
        return self._tree[self._leaves : self._leaves + self._capacity].copy()

    def __getitem__(self, slot: int) -> float:
        return float(self._tree.item(self._leaves + self._check(slot)))

    def __setitem__(self, slot: int, weight: float) -> None:
        """Set one weight and refresh its ancestors: O(log capacity), O(1) when it is unchanged.

        Raises:
            IndexError: ``slot`` is outside ``[0, capacity)``.
            ValueError: ``weight`` is negative or not finite.
        """
        if not (math.isfinite(weight) and weight >= 0.0):
            raise ValueError(f"sum tree weights must be finite and >= 0, got {weight}")
        tree = self._tree
        item = tree.item
        i = self._leaves + self._check(slot)
        if item(i) == weight:
            return
        tree[i] = weight
        i >>= 1
        while i:
            tree[i] = item(2 * i) + item(2 * i + 1)
            i >>= 1

    def find(self, u: float) -> int:
        """Slot whose cumulative-weight interval contains ``u``, for ``0 <= u < total``.

        Slots with weight 0 are never returned: the descent keeps ``0 <= u < weight(node)`` at
        every node, clamping ``u`` below the right child's sum when rounding would push it out.

        Raises:
            ValueError: ``u`` is outside ``[0, total)`` (in particular when all weights are 0).
        """
        item = self._tree.item
        if not 0.0 <= u < item(1):
            raise ValueError(f"need 0 <= u < total ({item(1)}), got {u}")
        i = 1
        leaves = self._leaves
        while i < leaves:
            i <<= 1
            left = item(i)
            if u >= left:
                u -= left
                i += 1
                if u >= item(i):
                    u = math.nextafter(item(i), 0.0)
        return i - leaves

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n,)`` int64 slots drawn with replacement, each with probability weight / total.

        Uses exactly one ``rng.random(n)`` call.

        Raises:
            ValueError: all weights are 0.
        """
        total = self.total
        if total <= 0.0:
            raise ValueError("cannot draw from a sum tree whose weights are all 0")
        below = math.nextafter(total, 0.0)
        find = self.find
        us = (rng.random(n) * total).tolist()
        return np.array([find(u if u < total else below) for u in us], dtype=np.int64)

    def _check(self, slot: int) -> int:
        if not 0 <= slot < self._capacity:
            raise IndexError(f"slot {slot} is outside [0, {self._capacity})")
        return int(slot)


class SlotSelector:
    """Uniform, fitness-proportional and curiosity selection over a fixed set of slots.

    Slots are filled once and never emptied (archives only replace occupants), so the filled
    slots are an append-only array and a uniform draw is one ``rng.integers`` call.

    Args:
        capacity: number of slots.
        qd_offset: subtracted from fitness to get the fitness weight (see :func:`fitness_weight`).
    """

    def __init__(self, capacity: int, qd_offset: float) -> None:
        self.qd_offset = float(qd_offset)
        self._filled = np.empty(capacity, dtype=np.int64)
        self._num_filled = 0
        self._fitness = SumTree(capacity)
        self._curiosity = SumTree(capacity)

    def __len__(self) -> int:
        return self._num_filled

    @property
    def filled(self) -> np.ndarray:
        """Read-only ``(num_filled,)`` array of filled slots, in the order they were filled."""
        view = self._filled[: self._num_filled]
        view.flags.writeable = False
        return view

    def curiosity(self, slots: Iterable[int]) -> list[float]:
        """Curiosity scores of ``slots`` (0 for slots never filled)."""
        return [self._curiosity[s] for s in slots]

    def fill(self, slot: int, fitness: float) -> None:
        """Mark an empty slot as filled, with curiosity ``CURIOSITY_INIT``."""
        self._filled[self._num_filled] = slot
        self._num_filled += 1
        self._curiosity[slot] = CURIOSITY_INIT
        self._fitness[slot] = fitness_weight(fitness, self.qd_offset)

    def set_fitness(self, slot: int, fitness: float) -> None:
        """Update the fitness weight of a filled slot (its occupant changed)."""
        self._fitness[slot] = fitness_weight(fitness, self.qd_offset)

    def reward(self, slots: Iterable[int], accepted: bool) -> None:
        """Add ``CURIOSITY_REWARD`` (accepted) or ``CURIOSITY_PENALTY`` to each slot's score.

        A slot listed twice is updated twice. Scores never fall below ``CURIOSITY_FLOOR``.
        """
        reward_curiosity(self._curiosity, slots, accepted)

    def draw(self, n: int, strategy: str, rng: np.random.Generator) -> np.ndarray:
        """``(n,)`` filled slots drawn with replacement.

        ``uniform``: each filled slot equally likely. ``fitness``: probability proportional to the
        slot's fitness weight. ``curiosity``: proportional to its curiosity score. The caller has
        checked ``n`` and ``strategy`` and that at least one slot is filled.
        """
        if strategy == "uniform":
            return self._filled[rng.integers(0, self._num_filled, size=n)]
        tree = self._fitness if strategy == "fitness" else self._curiosity
        return tree.draw(n, rng)
