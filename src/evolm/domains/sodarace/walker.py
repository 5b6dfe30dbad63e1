"""The walker builder that Sodarace programs call, and the checks a walker must pass.

A program builds a 2-D robot from **joints** (point masses) and **muscles** (connections
between two joints)::

    wc = walker_creator()
    a = wc.add_joint(0.0, 0.0)
    b = wc.add_joint(10.0, 0.0)
    wc.add_muscle(a, b)                              # a bone: a rigid distance constraint
    wc.add_muscle(a, b, amplitude=0.3, phase=1.57)   # an oscillating muscle
    walker = wc.get_walker()

Coordinates are in walker **units** (x to the right, y up); the simulator maps 1 unit to 0.1 m.
A muscle's rest length is the distance between its joints as built, ``L0``. A muscle with
amplitude 0 is a **bone**: its length stays ``L0``. Otherwise its length follows

    L(t) = L0 * (1 + a * sin(2 * pi * f * t + phase))

where ``a`` is the amplitude clipped to [-:data:`MAX_AMPLITUDE`, :data:`MAX_AMPLITUDE`], ``phase``
is in radians and ``f`` is the domain's muscle frequency (1 Hz by default).

``add_muscle`` also accepts the form of the ELM paper's listings, with an ``is_distance`` flag
before the amplitude: ``add_muscle(j0, j1, False, 0.3, 1.57)``; a true flag makes a bone.
Joints are handles: two joints at equal coordinates are still two joints (and then too close
to be valid).

Misusing the builder (a non-finite coordinate, a joint from another walker, too many joints)
raises :class:`WalkerError` at the call; properties of the finished walker (joints too close,
too many muscles on one joint, too large a body) are listed by :meth:`Walker.problems`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "AMPLITUDE_LIMIT",
    "MAX_AMPLITUDE",
    "MAX_EXTENT",
    "MAX_JOINTS",
    "MAX_MUSCLES",
    "MAX_MUSCLES_PER_JOINT",
    "MIN_JOINT_DISTANCE",
    "Joint",
    "Muscle",
    "Walker",
    "WalkerCreator",
    "WalkerError",
    "walker_creator",
]

MAX_JOINTS = 200
"""Most joints a walker may have."""
MAX_MUSCLES = 1000
"""Most muscles (bones included) a walker may have."""
MAX_MUSCLES_PER_JOINT = 40
"""Most muscles (bones included) attached to one joint."""
MIN_JOINT_DISTANCE = 0.2
"""Joints closer than this (units) make a walker invalid."""
MAX_EXTENT = 200.0
"""Largest width or height (units) of a walker as built."""
MAX_AMPLITUDE = 0.5
"""Amplitudes are clipped to [-MAX_AMPLITUDE, MAX_AMPLITUDE] when simulated."""
AMPLITUDE_LIMIT = 10.0
"""An amplitude beyond +-AMPLITUDE_LIMIT is rejected as a likely bug (not clipped)."""


class WalkerError(ValueError):
    """A walker program misused the builder, or built a walker that cannot be simulated."""


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise WalkerError(f"{what} must be a number, got {type(value).__name__} {value!r:.60}")
    x = float(value)
    if not math.isfinite(x):
        raise WalkerError(f"{what} must be finite, got {x}")
    return x


class Joint:
    """Handle of a joint, returned by :meth:`WalkerCreator.add_joint`.

    ``x``, ``y`` and ``index`` (creation order) are read-only; ``x, y = joint`` and ``joint[0]``
    work as for a coordinate pair. Two handles are equal only if they are the same joint.
    """

    __slots__ = ("_owner", "index", "x", "y")

    def __init__(self, owner: WalkerCreator, index: int, x: float, y: float) -> None:
        self._owner = owner
        self.index = index
        self.x = x
        self.y = y

    def __iter__(self) -> Iterator[float]:
        yield self.x
        yield self.y

    def __getitem__(self, i: int) -> float:
        return (self.x, self.y)[i]

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return f"Joint({self.index}: x={self.x:g}, y={self.y:g})"


@dataclass(frozen=True)
class Muscle:
    """A connection between joints ``j0`` and ``j1`` (indices); a bone when ``amplitude`` is 0.

    ``amplitude`` is stored as given (clipped only when simulated, see :attr:`effective_amplitude`).
    """

    j0: int
    j1: int
    amplitude: float = 0.0
    phase: float = 0.0

    @property
    def is_bone(self) -> bool:
        return self.amplitude == 0.0

    @property
    def effective_amplitude(self) -> float:
        return float(np.clip(self.amplitude, -MAX_AMPLITUDE, MAX_AMPLITUDE))


@dataclass(frozen=True)
class Walker:
    """A finished walker: joint coordinates and muscles, as built (not yet checked).

    Attributes:
        joints: ``(x, y)`` of every joint, in units, in creation order.
        muscles: every muscle and bone, in creation order.
    """

    joints: tuple[tuple[float, float], ...]
    muscles: tuple[Muscle, ...]

    @property
    def width(self) -> float:
        """Horizontal extent of the joints as built (units; 0 when empty)."""
        xs = [x for x, _ in self.joints]
        return max(xs) - min(xs) if xs else 0.0

    @property
    def height(self) -> float:
        """Vertical extent of the joints as built (units; 0 when empty)."""
        ys = [y for _, y in self.joints]
        return max(ys) - min(ys) if ys else 0.0

    @property
    def total_length(self) -> float:
        """Sum of the rest lengths of every muscle and bone (units)."""
        pts = self.joints
        return float(sum(math.dist(pts[m.j0], pts[m.j1]) for m in self.muscles))

    @property
    def mass(self) -> float:
        """Sodarace's mass measure: joint count plus half the total muscle length."""
        return len(self.joints) + self.total_length / 2.0

    @property
    def active_muscles(self) -> int:
        """Number of oscillating muscles (amplitude not 0)."""
        return sum(not m.is_bone for m in self.muscles)

    def problems(self, limit: int = 5) -> list[str]:
        """Why this walker cannot be simulated; empty when it is valid.

        Checks: at least one muscle; at most :data:`MAX_JOINTS` joints and :data:`MAX_MUSCLES`
        muscles; at most :data:`MAX_MUSCLES_PER_JOINT` muscles on one joint; no two joints
        closer than :data:`MIN_JOINT_DISTANCE`; width and height at most :data:`MAX_EXTENT`.
        At most ``limit`` problems are listed.
        """
        out: list[str] = []
        n = len(self.joints)
        if n == 0:
            return ["the walker has no joints; add joints with add_joint(x, y)"]
        if not self.muscles:
            return [
                f"the walker has {n} joint{'s' * (n != 1)} but no muscles; connect joints "
                "with add_muscle(j0, j1, amplitude, phase)"
            ]
        if n > MAX_JOINTS:
            out.append(f"{n} joints; at most {MAX_JOINTS} are allowed")
        if len(self.muscles) > MAX_MUSCLES:
            out.append(f"{len(self.muscles)} muscles; at most {MAX_MUSCLES} are allowed")
        counts = np.zeros(n, dtype=np.int64)
        for m in self.muscles:
            counts[m.j0] += 1
            counts[m.j1] += 1
        busy = np.flatnonzero(counts > MAX_MUSCLES_PER_JOINT)
        if busy.size:
            j = int(busy[0])
            out.append(
                f"joint {j} has {int(counts[j])} muscles attached; at most "
                f"{MAX_MUSCLES_PER_JOINT} per joint are allowed"
            )
        for what, extent in (("width", self.width), ("height", self.height)):
            if extent > MAX_EXTENT:
                out.append(f"the walker's {what} is {extent:.6g} units; at most {MAX_EXTENT:g}")
        if n <= MAX_JOINTS:
            pts = np.asarray(self.joints, dtype=np.float64)
            d2 = np.sum((pts[:, None, :] - pts[None, :, :]) ** 2, axis=-1)
            d2[np.tril_indices(n)] = np.inf
            i, j = (int(k) for k in np.unravel_index(int(np.argmin(d2)), d2.shape))
            if d2[i, j] < MIN_JOINT_DISTANCE**2:
                close = int(np.count_nonzero(d2 < MIN_JOINT_DISTANCE**2))
                others = f" ({close - 1} more pairs too)" if close > 1 else ""
                out.append(
                    f"joints {i} and {j} are {math.sqrt(d2[i, j]):.3g} units apart{others}; "
                    f"joints must be at least {MIN_JOINT_DISTANCE:g} apart"
                )
        return out[:limit]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: ``{"joints": [[x, y], ...], "muscles": [[j0, j1, a, p]]}``."""
        return {
            "joints": [[x, y] for x, y in self.joints],
            "muscles": [[m.j0, m.j1, m.amplitude, m.phase] for m in self.muscles],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Walker:
        """Inverse of :meth:`to_dict`."""
        return cls(
            joints=tuple((float(x), float(y)) for x, y in d["joints"]),
            muscles=tuple(
                Muscle(int(a), int(b), float(amp), float(ph)) for a, b, amp, ph in d["muscles"]
            ),
        )


class WalkerCreator:
    """Builds a :class:`Walker` (ELM's ``walker_creator``; see the module docstring)."""

    def __init__(self) -> None:
        self._joints: list[Joint] = []
        self._muscles: list[Muscle] = []

    def add_joint(self, x: float, y: float) -> Joint:
        """Add a joint at ``(x, y)`` (units) and return its handle.

        Raises:
            WalkerError: a coordinate is not a finite number, or the walker already has
                :data:`MAX_JOINTS` joints.
        """
        if len(self._joints) >= MAX_JOINTS:
            raise WalkerError(f"too many joints: at most {MAX_JOINTS} are allowed")
        joint = Joint(self, len(self._joints), _number(x, "x"), _number(y, "y"))
        self._joints.append(joint)
        return joint

    def _index(self, joint: Any, what: str) -> int:
        if isinstance(joint, Joint):
            if joint._owner is not self:
                raise WalkerError(f"{what} is a joint of another walker_creator")
            return joint.index
        if isinstance(joint, numbers.Integral) and not isinstance(joint, bool):
            if not 0 <= int(joint) < len(self._joints):
                raise WalkerError(
                    f"{what} is joint index {joint}, but there are only {len(self._joints)} joints"
                )
            return int(joint)
        raise WalkerError(
            f"{what} must be a joint returned by add_joint, got {type(joint).__name__} "
            f"{joint!r:.60}"
        )

    def add_muscle(self, j0: Any, j1: Any, *args: Any, **kwargs: Any) -> Muscle:
        """Connect two joints; a bone when the amplitude is 0, else an oscillating muscle.

        Forms accepted::

            add_muscle(j0, j1)                               # bone
            add_muscle(j0, j1, amplitude, phase=0.0)         # muscle (amplitude 0: bone)
            add_muscle(j0, j1, is_distance, amplitude, phase)  # the ELM paper's listings

        ``j0`` and ``j1`` are joint handles (or joint indices). ``amplitude`` is a fraction of
        the rest length (clipped to +-:data:`MAX_AMPLITUDE` when simulated); ``phase`` is in
        radians. In the ELM form a true ``is_distance`` makes a bone whatever the amplitude.

        Raises:
            WalkerError: bad joints (not handles of this walker, or the same joint twice), bad
                numbers (not finite, or an amplitude beyond +-:data:`AMPLITUDE_LIMIT`), bad
                arguments, or more than :data:`MAX_MUSCLES` muscles.
        """
        if len(self._muscles) >= MAX_MUSCLES:
            raise WalkerError(f"too many muscles: at most {MAX_MUSCLES} are allowed")
        unknown = set(kwargs) - {"amplitude", "phase", "is_distance"}
        if unknown:
            raise WalkerError(
                f"add_muscle got unexpected keyword {sorted(unknown)[0]!r}; it takes "
                "(j0, j1, amplitude=0.0, phase=0.0)"
            )
        is_distance: Any = kwargs.get("is_distance", False)
        if len(args) == 3 or (args and isinstance(args[0], bool)):
            if "is_distance" in kwargs:
                raise WalkerError("add_muscle got is_distance twice")
            is_distance, *args_list = args
            args = tuple(args_list)
        if len(args) > 2:
            raise WalkerError(
                f"add_muscle takes (j0, j1, amplitude=0.0, phase=0.0) or (j0, j1, is_distance, "
                f"amplitude, phase); got {len(args) + 2} positional arguments"
            )
        names = ("amplitude", "phase")
        values = dict(zip(names, args, strict=False))
        for name in names:
            if name in kwargs:
                if name in values:
                    raise WalkerError(f"add_muscle got {name} twice")
                values[name] = kwargs[name]
        amplitude = _number(values.get("amplitude", 0.0), "amplitude")
        phase = _number(values.get("phase", 0.0), "phase")
        if abs(amplitude) > AMPLITUDE_LIMIT:
            raise WalkerError(
                f"amplitude {amplitude:g} is out of range: it is a fraction of the rest length, "
                f"clipped to +-{MAX_AMPLITUDE:g}; values beyond +-{AMPLITUDE_LIMIT:g} are rejected"
            )
        i0, i1 = self._index(j0, "j0"), self._index(j1, "j1")
        if i0 == i1:
            raise WalkerError(f"add_muscle connects joint {i0} to itself")
        if is_distance:
            amplitude = 0.0
        muscle = Muscle(i0, i1, amplitude, phase)
        self._muscles.append(muscle)
        return muscle

    def get_walker(self) -> Walker:
        """The walker built so far."""
        return Walker(
            joints=tuple((j.x, j.y) for j in self._joints),
            muscles=tuple(self._muscles),
        )


walker_creator = WalkerCreator
"""ELM's name for :class:`WalkerCreator`."""
