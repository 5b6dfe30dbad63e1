"""A strict evaluator for packing 26 circles in the unit square (maximise the sum of radii).

Two public "records" on this benchmark were reward hacks: NaN centres that slipped past an
overlap check, and a sum of 4.01 that was reported rather than computed. This evaluator trusts
nothing the program says:

- ``run(program_path)`` runs the program (in its own sandboxed process, under evolm) and returns
  only plain numbers: the centres, the radii and the sum the program reports.
- ``score(data)`` runs in a separate process that never runs the program. It checks that there
  are exactly 26 circles, that every value is a finite real number, that every radius is >= 0,
  that every circle lies inside the square and that no two overlap, with ``TOLERANCE`` (0 by
  default: touching is allowed, overlapping by any amount is not). The fitness ``sum_radii`` is
  recomputed from the radii; a reported sum that disagrees with it is an error.
- ``integrity_check(metrics, data)`` re-derives the fitness from the data once more.

A packing that breaks a rule is scored ``{"error": "<what is wrong>"}``, which evolm records as
an invalid program naming the rule. ``violation`` is the largest amount by which any rule is
broken (0 for a valid packing), so the same run tells what a looser tolerance would accept:
``valid_at_1e-6`` is 1.0 when the packing is valid with a tolerance of 1e-6. ``centers`` and
``radii`` repeat the circles, so ``evolm report`` can draw the packing (valid or not).

Descriptors (declared in task.toml): ``radius_spread``, the standard deviation of the radii, and
``on_border``, the share of circles within 1e-3 of a side.

Run it by hand with ``python evaluator.py initial.py``.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from typing import Any

N = 26
TOLERANCE = 0.0
"""How far a circle may cross a side or another circle. 0: not at all."""
LOOSE_TOLERANCE = 1e-6
"""The tolerance some published results used; reported as ``valid_at_1e-6``."""
SUM_MATCH = 1e-9
"""The reported sum must match the recomputed one to this absolute difference."""
BORDER = 1e-3


def _load(program_path: str) -> Any:
    spec = importlib.util.spec_from_file_location("packing_program", program_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {program_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plain(values: Any) -> Any:
    """Nested sequences (lists, tuples, numpy arrays) as lists of Python floats, for sending."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (list, tuple)):
        return [_plain(v) for v in values]
    if isinstance(values, bool):
        return values
    if isinstance(values, (int, float)):
        return float(values)
    return str(type(values).__name__)  # not a number: score() will say so


def run(program_path: str) -> dict[str, Any]:
    """Run the program's ``run_packing()`` and return its circles as plain data."""
    result = _load(program_path).run_packing()
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        return {"shape": f"run_packing() returned {type(result).__name__}, not a tuple"}
    centers, radii = result[0], result[1]
    reported = result[2] if len(result) == 3 else None
    return {
        "centers": _plain(centers),
        "radii": _plain(radii),
        "reported_sum": _plain(reported) if reported is not None else None,
    }


def _real(value: Any) -> bool:
    return type(value) is float and math.isfinite(value)


def _check(data: Any) -> tuple[list[tuple[float, float]], list[float], float | None] | str:
    """The circles and reported sum, or what is wrong with the data's shape or values."""
    if not isinstance(data, dict):
        return "the program's result is not a packing"
    if "shape" in data:
        return str(data["shape"])
    centers, radii, reported = data.get("centers"), data.get("radii"), data.get("reported_sum")
    if not isinstance(centers, list) or len(centers) != N:
        return f"expected {N} centres, got {len(centers) if isinstance(centers, list) else 0}"
    if not isinstance(radii, list) or len(radii) != N:
        return f"expected {N} radii, got {len(radii) if isinstance(radii, list) else 0}"
    points = []
    for i, c in enumerate(centers):
        if not isinstance(c, list) or len(c) != 2 or not all(_real(v) for v in c):
            return f"centre {i} is not two finite numbers: {c!r:.60}"
        points.append((c[0], c[1]))
    for i, r in enumerate(radii):
        if not _real(r):
            return f"radius {i} is not a finite number: {r!r:.60}"
        if r < 0:
            return f"radius {i} is negative: {r!r}"
    if reported is not None and not _real(reported):
        return f"the reported sum is not a finite number: {reported!r:.60}"
    return points, list(radii), reported


def violations(points: list[tuple[float, float]], radii: list[float]) -> tuple[float, str]:
    """The largest amount by which a circle crosses a side or overlaps another, and which."""
    worst, where = 0.0, ""
    for i, ((x, y), r) in enumerate(zip(points, radii, strict=True)):
        for amount, side in (
            (r - x, "left"),
            (r - y, "bottom"),
            (x + r - 1, "right"),
            (y + r - 1, "top"),
        ):
            if amount > worst:
                worst, where = amount, f"circle {i} crosses the {side} side by {amount:.3g}"
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            amount = radii[i] + radii[j] - math.dist(points[i], points[j])
            if amount > worst:
                worst, where = amount, f"circles {i} and {j} overlap by {amount:.3g}"
    return worst, where


def score(data: Any) -> dict[str, Any]:
    """Check the packing strictly and score it: ``sum_radii`` recomputed from the radii."""
    checked = _check(data)
    if isinstance(checked, str):
        return {"error": checked}
    points, radii, reported = checked
    total = math.fsum(radii)
    if reported is not None and abs(reported - total) > SUM_MATCH:
        return {"error": f"the reported sum {reported!r} does not match the circles' sum {total!r}"}
    worst, where = violations(points, radii)
    metrics = {
        "sum_radii": total,
        "violation": worst,
        "valid_at_1e-6": float(worst <= LOOSE_TOLERANCE),
        "radius_spread": float(_std(radii)),
        "on_border": sum(
            min(x - r, y - r, 1 - x - r, 1 - y - r) <= BORDER
            for (x, y), r in zip(points, radii, strict=True)
        )
        / N,
        # the circles themselves, for pictures (evolm stores lists of numbers as they are);
        # neither the fitness nor a descriptor
        "centers": [[x, y] for x, y in points],
        "radii": list(radii),
    }
    if worst > TOLERANCE:
        metrics["error"] = f"{where} (tolerance {TOLERANCE:g})"
    return metrics


def _std(values: list[float]) -> float:
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


def integrity_check(metrics: dict[str, Any], data: Any) -> bool | str:
    """The fitness must be the sum of the radii the program returned, recomputed here."""
    checked = _check(data)
    if isinstance(checked, str):
        return checked
    total = math.fsum(checked[1])
    if metrics.get("sum_radii") != total:
        return f"sum_radii {metrics.get('sum_radii')!r} is not the circles' sum {total!r}"
    return True


def evaluate(program_path: str) -> dict[str, Any]:
    """Both phases in one process (for running by hand, or evaluators that take one call)."""
    return score(run(program_path))


if __name__ == "__main__":
    shown = evaluate(sys.argv[1] if len(sys.argv) > 1 else "initial.py")
    print({k: v for k, v in shown.items() if k not in ("centers", "radii")})
