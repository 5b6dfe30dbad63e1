"""The image domain: evolve a ``draw()`` program whose picture matches a target image.

This is OpenELM's image environment (CarperAI 2023, after Lehman et al. 2022, "Evolution
through Large Models"): a program defines ``draw()`` returning an ``size x size x 3`` RGB array;
fitness is how close the picture is to a target, and the behaviour descriptors are the picture's
mean red, green and blue, so the archive keeps good pictures of every overall colour.

Accepted return values: a ``numpy.ndarray`` of shape ``(size, size, 3)`` (rows, columns, RGB)
that is either floating point with every value in [0, 1] (1e-6 tolerance, then clipped) or
``uint8`` (divided by 255). Anything else is ``invalid`` with a reason naming what came back.

Fitness is ``-RMSE`` (``metric="l2"``) or ``-MAE`` (``metric="l1"``) over all pixels and channels
against the target; both lie in [-1, 0] (declared as ``fitness_bounds``), 0 being a perfect copy,
so ``qd_offset`` is -1.

The domain is two-phase (``scoring = "separate"``): :meth:`ImageDomain.run` calls ``draw()`` in
the program's sandboxed child and sends back the picture as a float64 array in [0, 1];
:meth:`ImageDomain.score` checks that array again and computes fitness and descriptors in a
process that never runs the program.

Targets are drawn procedurally with numpy at the requested size (pixel centres at
``(i + 0.5) / size`` in unit coordinates, hard edges, no anti-aliasing). Colours are RGB floats:

========  ==========================================================  ==================
target    shape (unit coordinates, centre (0.5, 0.5))                 colours (fg on bg)
========  ==========================================================  ==================
circle    disk of radius 0.3                                          red (0.9, 0.1, 0.1)
                                                                      on dark blue
                                                                      (0.1, 0.1, 0.3)
square    axis-aligned square of side 0.5                             green (0.1, 0.7, 0.2)
                                                                      on white (1, 1, 1)
triangle  upward triangle, apex (0.5, 0.15), base y = 0.85 from       blue (0.15, 0.3, 0.85)
          x = 0.15 to x = 0.85                                        on pale yellow
                                                                      (1.0, 0.95, 0.75)
cross     plus sign, two bars 0.8 long and 0.2 wide                   yellow (1.0, 0.85, 0.1)
                                                                      on black (0, 0, 0)
ring      annulus with radii 0.25 to 0.4                              orange (1.0, 0.55, 0.0)
                                                                      on grey (0.5, 0.5, 0.5)
========  ==========================================================  ==================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from evolm.domains.base import Domain, DomainContext
from evolm.domains.program import (
    ProgramFailure,
    call_program,
    load_function,
)
from evolm.types import DescriptorSpace, Evaluation, Status

__all__ = ["ImageDomain", "make_target", "random_draw_program"]

_RANGE_TOLERANCE = 1e-6
_METRICS = ("l2", "l1")

_Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class _Target:
    description: str
    mask: _Mask
    foreground: tuple[float, float, float]
    background: tuple[float, float, float]


def _triangle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    half_width = 0.35 * (y - 0.15) / 0.7
    return (y >= 0.15) & (y <= 0.85) & (np.abs(x - 0.5) <= half_width)


def _disk(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.3**2


def _square(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (np.abs(x - 0.5) <= 0.25) & (np.abs(y - 0.5) <= 0.25)


def _ring(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r2 = (x - 0.5) ** 2 + (y - 0.5) ** 2
    return (r2 <= 0.4**2) & (r2 >= 0.25**2)


def _cross(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dx, dy = np.abs(x - 0.5), np.abs(y - 0.5)
    return ((dx <= 0.1) & (dy <= 0.4)) | ((dy <= 0.1) & (dx <= 0.4))


_TARGETS: dict[str, _Target] = {
    "circle": _Target(
        "a red disk centred on a dark blue background, its radius 0.3 of the image width",
        _disk,
        (0.9, 0.1, 0.1),
        (0.1, 0.1, 0.3),
    ),
    "square": _Target(
        "a green square centred on a white background, its side half the image width",
        _square,
        (0.1, 0.7, 0.2),
        (1.0, 1.0, 1.0),
    ),
    "triangle": _Target(
        "a blue triangle pointing up, centred on a pale yellow background, its base and height "
        "0.7 of the image width",
        _triangle,
        (0.15, 0.3, 0.85),
        (1.0, 0.95, 0.75),
    ),
    "cross": _Target(
        "a yellow plus sign centred on a black background, its bars 0.8 of the image width long "
        "and 0.2 wide",
        _cross,
        (1.0, 0.85, 0.1),
        (0.0, 0.0, 0.0),
    ),
    "ring": _Target(
        "an orange ring centred on a grey background, its outer radius 0.4 and inner radius "
        "0.25 of the image width",
        _ring,
        (1.0, 0.55, 0.0),
        (0.5, 0.5, 0.5),
    ),
}


def make_target(name: str, size: int) -> np.ndarray:
    """Draw target ``name`` as a float64 array of shape ``(size, size, 3)`` with values in [0, 1].

    Raises:
        ValueError: unknown target (the message lists the known ones).
    """
    if name not in _TARGETS:
        raise ValueError(f"unknown image target {name!r}; known targets: {', '.join(_TARGETS)}")
    spec = _TARGETS[name]
    c = (np.arange(size, dtype=np.float64) + 0.5) / size
    x, y = np.meshgrid(c, c)  # x varies along columns, y along rows (y grows downwards)
    mask = spec.mask(x, y)[..., None]
    return np.where(mask, np.array(spec.foreground), np.array(spec.background))


def _seed_programs(size: int) -> list[str]:
    black = f"""import numpy as np


def draw():
    return np.zeros(({size}, {size}, 3))
"""
    square = f"""import numpy as np


def draw():
    img = np.full(({size}, {size}, 3), 0.9)
    lo, hi = {size} // 4, {size} - {size} // 4
    img[lo:hi, lo:hi] = (0.2, 0.4, 0.8)
    return img
"""
    gradient = f"""import numpy as np


def draw():
    ramp = np.linspace(0.0, 1.0, {size})
    img = np.zeros(({size}, {size}, 3))
    img[:, :, 0] = ramp[None, :]
    img[:, :, 2] = 1.0 - ramp[None, :]
    return img
"""
    disk = f"""import numpy as np


def draw():
    c = (np.arange({size}) + 0.5) / {size}
    x, y = np.meshgrid(c, c)
    inside = (x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.35 ** 2
    img = np.ones(({size}, {size}, 3)) * 0.2
    img[inside] = (1.0, 0.8, 0.0)
    return img
"""
    return [black, square, gradient, disk]


# -- random programs (random search) ------------------------------------------------------------
# A small grammar of what draw() programs do: a background (a flat colour or a gradient between
# two colours), then one to four shapes, each painted over or blended in with its own colour.
_SHAPES = ("disk", "rect", "ring", "triangle", "stripes")


def _num(v: float) -> str:
    return f"{v:.3f}"


def _colour(rng: np.random.Generator) -> str:
    return "(" + ", ".join(_num(v) for v in rng.random(3)) + ")"


def _mask(kind: str, rng: np.random.Generator) -> str:
    """A boolean expression over the unit pixel centres ``x`` and ``y`` for shape ``kind``."""
    cx, cy = (_num(v) for v in rng.uniform(0.1, 0.9, 2))
    if kind == "disk":
        return f"(x - {cx}) ** 2 + (y - {cy}) ** 2 <= {_num(rng.uniform(0.05, 0.45))} ** 2"
    if kind == "rect":
        hw, hh = (_num(v) for v in rng.uniform(0.05, 0.45, 2))
        return f"(np.abs(x - {cx}) <= {hw}) & (np.abs(y - {cy}) <= {hh})"
    if kind == "ring":
        radius, half = _num(rng.uniform(0.08, 0.4)), _num(rng.uniform(0.015, 0.1))
        return f"np.abs(np.sqrt((x - {cx}) ** 2 + (y - {cy}) ** 2) - {radius}) <= {half}"
    if kind == "triangle":
        top = rng.uniform(0.0, 0.6)
        bottom = top + rng.uniform(0.15, 1.0 - top)
        spread = rng.uniform(0.1, 0.45)  # half the base
        return (
            f"(y >= {_num(top)}) & (y <= {_num(bottom)}) & (np.abs(x - {cx}) <= "
            f"{_num(spread)} * (y - {_num(top)}) / {_num(bottom - top)})"
        )
    axis = ("x", "y", "(x + y)", "(x - y)")[int(rng.integers(4))]
    freq, phase = rng.uniform(4.0, 40.0), rng.uniform(0.0, 2 * np.pi)
    return f"np.sin({axis} * {_num(freq)} + {_num(phase)}) > {_num(rng.uniform(-0.8, 0.8))}"


def random_draw_program(size: int, rng: np.random.Generator) -> str:
    """A random ``draw()`` program for pictures of ``size`` pixels: a flat or gradient
    background and one to four random shapes (disks, rectangles, rings, triangles, stripes),
    each painted over or blended in. Every colour lies in [0, 1] and blending is convex, so
    the picture always does too. The same generator state gives the same program.
    """
    lines = [
        "import numpy as np",
        "",
        "",
        "def draw():",
        f"    c = (np.arange({size}) + 0.5) / {size}",
        "    x, y = np.meshgrid(c, c)",
        f"    img = np.empty(({size}, {size}, 3))",
    ]
    background = ("flat", "x", "y", "radial")[int(rng.integers(4))]
    if background == "flat":
        lines.append(f"    img[:] = {_colour(rng)}")
    else:
        ramp = {
            "x": "x",
            "y": "y",
            "radial": "np.minimum(np.sqrt((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.7, 1.0)",
        }[background]
        lines += [
            f"    t = {ramp}[:, :, None]",
            f"    start, end = np.array({_colour(rng)}), np.array({_colour(rng)})",
            "    img[:] = (1 - t) * start + t * end",
        ]
    for _ in range(int(rng.integers(1, 5))):
        kind = _SHAPES[int(rng.integers(len(_SHAPES)))]
        lines.append(f"    mask = {_mask(kind, rng)}")
        colour = _colour(rng)
        if rng.random() < 0.3:
            alpha = _num(rng.uniform(0.2, 0.8))
            lines.append(
                f"    img[mask] = (1 - {alpha}) * img[mask] + {alpha} * np.array({colour})"
            )
        else:
            lines.append(f"    img[mask] = {colour}")
    lines.append("    return img")
    return "\n".join(lines) + "\n"


class ImageDomain(Domain):
    """Match a procedurally drawn target image (OpenELM's image environment).

    Args:
        target: one of :meth:`targets` (see the module docstring for shapes and colours).
        size: height and width of the image in pixels, 8 to 128.
        metric: ``"l2"`` (fitness = -RMSE) or ``"l1"`` (fitness = -MAE).

    Raises:
        ValueError: unknown target or metric, or a size outside 8..128.
    """

    name = "image"
    eval_timeout = 5.0
    qd_offset = -1.0
    scoring = "separate"
    fitness_bounds = (-1.0, 0.0)
    descriptors_in_space = True

    def __init__(self, target: str = "circle", size: int = 32, metric: str = "l2") -> None:
        if isinstance(size, bool) or not isinstance(size, int | np.integer):
            raise ValueError(f"image size must be an int, got {size!r}")
        size = int(size)
        if not 8 <= size <= 128:
            raise ValueError(f"image size must be between 8 and 128, got {size}")
        if metric not in _METRICS:
            raise ValueError(f"image metric must be one of {', '.join(_METRICS)}, got {metric!r}")
        self.target_image = make_target(target, size)
        self.target = target
        self.size = size
        self.metric = metric
        self._expected = f"expected ({size}, {size}, 3) float in [0, 1] or uint8"

    @staticmethod
    def targets() -> list[str]:
        """Names of the built-in targets."""
        return list(_TARGETS)

    @property
    def descriptor_space(self) -> DescriptorSpace:
        return DescriptorSpace(("mean_r", "mean_g", "mean_b"), ((0.0, 1.0),) * 3)

    def seeds(self) -> list[str]:
        return _seed_programs(self.size)

    def context(self) -> DomainContext:
        s = self.size
        measure = "root-mean-square" if self.metric == "l2" else "mean absolute"
        description = (
            f"Write a Python function `draw()` that takes no arguments and returns an image as a "
            f"numpy array of shape ({s}, {s}, 3): rows, columns, RGB channels, with float values "
            f"in [0, 1] (or uint8 values in 0..255). The picture should look as much as possible "
            f"like the target image: {_TARGETS[self.target].description}. The score is minus the "
            f"{measure} difference from the target over all pixels and channels, so 0 is a "
            f"perfect copy. Programs are also kept for being good in their own overall colour, "
            f"so varied colour schemes are useful."
        )
        api = (
            f"# draw() takes no arguments and returns a ({s}, {s}, 3) numpy array: rows, columns,\n"
            f"# RGB; floats in [0, 1] or uint8. numpy is imported as np; the standard\n"
            f"# library is available.\n"
        )
        return DomainContext(
            description=description,
            function_name="draw",
            api=api,
            file_name="image.py",
            random_program=self.random_program,
        )

    def random_program(self, rng: np.random.Generator) -> str:
        """A random ``draw()`` program (see :func:`random_draw_program`), for random search."""
        return random_draw_program(self.size, rng)

    def _check(self, value: Any) -> np.ndarray | str:
        """The picture as float64 in [0, 1], or the reason ``value`` is not an acceptable one."""
        s = self.size
        if not isinstance(value, np.ndarray):
            return f"draw() returned {type(value).__name__}; {self._expected}"
        if value.shape != (s, s, 3):
            return f"draw() returned shape {value.shape}; {self._expected}"
        if value.dtype == np.uint8:
            return value.astype(np.float64) / 255.0
        if value.dtype.kind != "f":
            return f"draw() returned dtype {value.dtype}; {self._expected}"
        img = value.astype(np.float64)
        bad = int(np.count_nonzero(~np.isfinite(img)))
        if bad:
            return f"draw() returned {bad} NaN or infinite values; {self._expected}"
        lo, hi = float(img.min()), float(img.max())
        if lo < -_RANGE_TOLERANCE or hi > 1.0 + _RANGE_TOLERANCE:
            return f"draw() returned values in [{lo:.6g}, {hi:.6g}]; {self._expected}"
        return np.clip(img, 0.0, 1.0)

    def run(self, code: str, seed: int = 0) -> np.ndarray | Evaluation:
        """Run ``code`` in a fresh namespace and call its ``draw()``: the picture as a float64
        array of shape ``(size, size, 3)`` in [0, 1], or the failed evaluation saying why not.

        ``random`` and ``numpy.random`` are reseeded with ``seed`` first, so a program that draws
        random numbers gives the same picture for the same seed. Never raises for bad code
        (``KeyboardInterrupt`` excepted): a syntax error or an unusable return value is
        ``invalid``, an exception or ``exit()`` is ``error``.
        """
        extras = self._extras()
        # numpy is pre-imported as np (as the API text says): small models often omit the import
        draw = load_function(code, "draw", seed, {"np": np})
        if isinstance(draw, ProgramFailure):
            return Evaluation.failure(draw.status, draw.error, extras=extras)
        value, failed = call_program(draw)
        if failed is not None:
            return Evaluation.failure(failed.status, failed.error, extras=extras)
        img = self._check(value)
        if isinstance(img, str):
            return Evaluation.failure(Status.INVALID, img, extras=extras)
        return img

    def score(self, data: Any, seed: int = 0) -> Evaluation:
        """Fitness and descriptors of a picture :meth:`run` returned (checked again: it may be
        forged); ``invalid`` with the reason when it is not an acceptable picture."""
        extras = self._extras()
        img = self._check(data)
        if isinstance(img, str):
            return Evaluation.failure(Status.INVALID, img, extras=extras)
        diff = img - self.target_image
        if self.metric == "l2":
            fitness = -float(np.sqrt(np.mean(diff**2)))
        else:
            fitness = -float(np.mean(np.abs(diff)))
        descriptors = tuple(float(v) for v in img.mean(axis=(0, 1)))
        return Evaluation(status=Status.OK, fitness=fitness, descriptors=descriptors, extras=extras)

    def _extras(self) -> dict[str, Any]:
        return {"target": self.target, "metric": self.metric}
