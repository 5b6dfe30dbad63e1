"""A task directory's settings: ``task.toml`` parsed and checked into a :class:`TaskSpec`."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DescriptorSpec", "TaskSpec", "parse_task_toml"]

_TOP = (
    "name", "description", "program", "evaluator", "fitness", "timeout", "memory_mb",
    "fitness_bounds", "descriptors", "integrity",
)  # fmt: skip
_DESCRIPTOR = ("name", "low", "high")
_INTEGRITY = ("reevaluate", "tolerance", "fresh_seeds")


@dataclass(frozen=True)
class DescriptorSpec:
    """A metric the evaluator returns that is a behaviour descriptor, and its bounds."""

    name: str
    low: float
    high: float


@dataclass(frozen=True)
class TaskSpec:
    """The settings of ``task.toml`` (every key optional; see docs/domains.md)."""

    name: str = "task"
    description: str = ""
    program: str = "initial.py"
    evaluator: str = "evaluator.py"
    fitness: str | None = None
    timeout: float = 30.0
    memory_mb: int | None = None
    fitness_bounds: tuple[float, float] | None = None
    descriptors: tuple[DescriptorSpec, ...] = ()
    reevaluate: int = 2
    tolerance: float = 1e-9
    fresh_seeds: bool = True

    def to_plain(self) -> dict[str, Any]:
        """Plain data (for a worker's parameters); :meth:`from_plain` reads it back."""
        out = asdict(self)
        out["descriptors"] = [asdict(d) for d in self.descriptors]
        out["fitness_bounds"] = list(self.fitness_bounds) if self.fitness_bounds else None
        return out

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> TaskSpec:
        """The spec :meth:`to_plain` wrote."""
        d = dict(data)
        d["descriptors"] = tuple(DescriptorSpec(**x) for x in d.get("descriptors") or ())
        fb = d.get("fitness_bounds")
        d["fitness_bounds"] = (float(fb[0]), float(fb[1])) if fb else None
        return cls(**d)


def _unknown(keys: Any, known: tuple[str, ...], where: str) -> None:
    bad = sorted(set(keys) - set(known))
    if bad:
        raise ValueError(
            f"unknown key {bad[0]!r} in {where}; the known keys are {', '.join(known)}"
        )


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} in {where} must be a finite number, got {value!r}")
    return float(value)


def parse_task_toml(text: str, where: str = "task.toml") -> TaskSpec:
    """Parse and check a ``task.toml``.

    Raises:
        ValueError: a TOML syntax error, an unknown key (the message names it and the known
            ones), or a value of the wrong type or range.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where} is not valid TOML: {exc}") from None
    _unknown(raw, _TOP, where)
    kw: dict[str, Any] = {}
    for key in ("name", "description", "program", "evaluator", "fitness"):
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                raise ValueError(f"{key} in {where} must be a non-empty string, got {raw[key]!r}")
            kw[key] = raw[key]
    if "timeout" in raw:
        kw["timeout"] = _number(raw["timeout"], "timeout", where)
        if kw["timeout"] <= 0:
            raise ValueError(f"timeout in {where} must be positive, got {raw['timeout']!r}")
    if "memory_mb" in raw:
        mb = raw["memory_mb"]
        if isinstance(mb, bool) or not isinstance(mb, int) or mb < 16:
            raise ValueError(f"memory_mb in {where} must be an integer of at least 16, got {mb!r}")
        kw["memory_mb"] = mb
    if "fitness_bounds" in raw:
        fb = raw["fitness_bounds"]
        if not isinstance(fb, list) or len(fb) != 2:
            raise ValueError(f"fitness_bounds in {where} must be [low, high], got {fb!r}")
        lo, hi = (_number(v, "fitness_bounds", where) for v in fb)
        if not lo < hi:
            raise ValueError(f"fitness_bounds in {where} must have low < high, got {fb!r}")
        kw["fitness_bounds"] = (lo, hi)
    descriptors = []
    for i, d in enumerate(raw.get("descriptors") or ()):
        at = f"[[descriptors]] #{i + 1} of {where}"
        if not isinstance(d, dict):
            raise ValueError(f"{at} must be a table with name, low and high")
        _unknown(d, _DESCRIPTOR, at)
        if not isinstance(d.get("name"), str) or not d["name"]:
            raise ValueError(f"{at} needs a name (the metric the evaluator returns)")
        if "low" not in d or "high" not in d:
            raise ValueError(f"{at} ({d['name']}) needs low and high bounds")
        lo, hi = _number(d["low"], "low", at), _number(d["high"], "high", at)
        if not lo < hi:
            raise ValueError(f"{at} ({d['name']}) must have low < high, got {lo} and {hi}")
        descriptors.append(DescriptorSpec(d["name"], lo, hi))
    names = [d.name for d in descriptors]
    if len(set(names)) != len(names):
        raise ValueError(f"{where} declares a descriptor twice: {names}")
    kw["descriptors"] = tuple(descriptors)
    integrity = raw.get("integrity", {})
    if not isinstance(integrity, dict):
        raise ValueError(f"[integrity] in {where} must be a table")
    _unknown(integrity, _INTEGRITY, f"[integrity] of {where}")
    if "reevaluate" in integrity:
        n = integrity["reevaluate"]
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 10:
            raise ValueError(f"integrity.reevaluate in {where} must be 0..10, got {n!r}")
        kw["reevaluate"] = n
    if "tolerance" in integrity:
        tol = _number(integrity["tolerance"], "integrity.tolerance", where)
        if tol < 0:
            raise ValueError(f"integrity.tolerance in {where} must be >= 0, got {tol}")
        kw["tolerance"] = tol
    if "fresh_seeds" in integrity:
        if not isinstance(integrity["fresh_seeds"], bool):
            raise ValueError(f"integrity.fresh_seeds in {where} must be true or false")
        kw["fresh_seeds"] = integrity["fresh_seeds"]
    return TaskSpec(**kw)
