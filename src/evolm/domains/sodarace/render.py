"""Pictures of walkers: a PNG of the body and an animated GIF of the gait (Pillow).

Both draw from a :class:`WalkerView`: the joints as spawned, the muscles, the terrain geometry
and, for the animation, sampled joint positions (what :class:`~evolm.domains.sodarace.
SodaraceDomain` puts in ``extras`` when built with ``record_fps``). Colours:

* bones: dark grey; muscles: a colour per phase (hue = phase / 2 pi), thicker for a larger
  amplitude; in the animation a muscle is drawn red while longer than its rest length and blue
  while shorter;
* joints: white discs with a dark outline;
* terrain: the ground in brown, walls and ceilings in grey; a dashed line marks where the centre
  of mass started, and the caption gives the time and the displacement so far.

Pillow is imported when a picture is drawn; without it the functions raise ``ImportError``
naming the install command.
"""

from __future__ import annotations

import colorsys
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evolm.domains.sodarace.simulator import JOINT_RADIUS
from evolm.domains.sodarace.terrains import TerrainGeometry

__all__ = ["WalkerView", "render_body", "render_gait"]

_SUPERSAMPLE = 2
_BACKGROUND = (246, 246, 240)
_GROUND = (120, 86, 52)
_BLOCK = (150, 150, 160)
_BONE = (60, 60, 66)
_TEXT = (30, 30, 30)
_MARK = (170, 170, 170)


def _pil() -> Any:
    try:
        from PIL import Image, ImageDraw
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("drawing walkers needs Pillow: pip install pillow") from exc
    return Image, ImageDraw


@dataclass(frozen=True)
class WalkerView:
    """What a picture of a walker needs, in walker units.

    Attributes:
        spawn: ``(joints, 2)`` positions as placed at the start.
        muscles: ``(j0, j1, amplitude, phase)`` per muscle (amplitude 0: bone).
        terrain: the terrain geometry around the spawned walker.
        times: ``(k,)`` sample times (s, relative to the start of measurement); may be empty.
        frames: ``(k, joints, 2)`` sampled positions; may be empty.
        title: caption of the pictures.
    """

    spawn: np.ndarray
    muscles: tuple[tuple[int, int, float, float], ...]
    terrain: TerrainGeometry
    times: np.ndarray
    frames: np.ndarray
    title: str = ""

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any], title: str = "") -> WalkerView:
        """Build from the ``extras`` of an evaluation made with ``record_fps`` > 0.

        Raises:
            ValueError: ``extras`` lacks the recorded trajectory.
        """
        missing = [k for k in ("walker", "spawn", "terrain_geometry", "frames") if k not in extras]
        if missing:
            raise ValueError(
                f"evaluation extras lack {', '.join(missing)}; evaluate with record_fps > 0"
            )
        muscles = tuple(
            (int(a), int(b), float(amp), float(ph)) for a, b, amp, ph in extras["walker"]["muscles"]
        )
        frames = np.asarray(extras["frames"], dtype=np.float64)
        return cls(
            spawn=np.asarray(extras["spawn"], dtype=np.float64).reshape(-1, 2),
            muscles=muscles,
            terrain=TerrainGeometry.from_dict(extras["terrain_geometry"]),
            times=np.asarray(extras.get("times", []), dtype=np.float64),
            frames=frames.reshape(-1, len(extras["spawn"]), 2),
            title=title,
        )


class _Camera:
    """Maps world units to pixels for a view ``span`` units wide centred on ``cx``."""

    def __init__(self, size: tuple[int, int], span: float, y_low: float) -> None:
        self.w, self.h = size
        self.scale = self.w / span
        self.y_low = y_low
        self.cx = 0.0

    def __call__(self, x: float, y: float) -> tuple[float, float]:
        px = (x - self.cx) * self.scale + self.w / 2
        py = self.h - (y - self.y_low) * self.scale
        return px, py

    @property
    def x_range(self) -> tuple[float, float]:
        half = self.w / 2 / self.scale
        return self.cx - half, self.cx + half


def _phase_colour(phase: float) -> tuple[int, int, int]:
    hue = (phase / (2 * math.pi)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 0.85)
    return int(r * 255), int(g * 255), int(b * 255)


def _strain_colour(strain: float, amplitude: float) -> tuple[int, int, int]:
    t = max(-1.0, min(1.0, strain / max(abs(amplitude), 1e-9)))
    if t >= 0:
        return int(200 + 40 * t), int(120 - 90 * t), int(100 - 70 * t)
    t = -t
    return int(110 - 80 * t), int(140 - 40 * t), int(200 + 40 * t)


def _draw_terrain(draw: Any, cam: _Camera, terrain: TerrainGeometry) -> None:
    lo, hi = cam.x_range
    poly = [cam(x, y) for x, y in _clip_polyline(terrain.ground, lo - 1, hi + 1)]
    if len(poly) >= 2:
        floor = cam.h + 10
        draw.polygon([*poly, (poly[-1][0], floor), (poly[0][0], floor)], fill=(214, 196, 170))
        draw.line(poly, fill=_GROUND, width=3 * _SUPERSAMPLE)
    for block in terrain.blocks:
        draw.polygon([cam(x, y) for x, y in block], fill=_BLOCK, outline=(90, 90, 100))


def _clip_polyline(
    pts: Sequence[tuple[float, float]], lo: float, hi: float
) -> list[tuple[float, float]]:
    """The part of the polyline ``pts`` (x increasing) between ``x = lo`` and ``x = hi``."""
    out: list[tuple[float, float]] = []
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x1 < lo or x0 > hi:
            continue
        a = max(lo, x0)
        b = min(hi, x1)
        ya = y0 + (y1 - y0) * ((a - x0) / (x1 - x0) if x1 != x0 else 0.0)
        yb = y0 + (y1 - y0) * ((b - x0) / (x1 - x0) if x1 != x0 else 0.0)
        if not out or out[-1] != (a, ya):
            out.append((a, ya))
        out.append((b, yb))
    return out


def _draw_walker(
    draw: Any,
    cam: _Camera,
    pos: np.ndarray,
    muscles: Sequence[tuple[int, int, float, float]],
    rest: np.ndarray,
    animate: bool,
) -> None:
    width = max(1, round(0.35 * cam.scale))
    order = sorted(range(len(muscles)), key=lambda k: muscles[k][2] != 0.0)
    for k in order:
        a, b, amp, ph = muscles[k]
        p0, p1 = cam(*pos[a]), cam(*pos[b])
        if amp == 0.0:
            draw.line([p0, p1], fill=_BONE, width=width)
            continue
        if animate:
            length = float(np.hypot(*(pos[a] - pos[b])))
            colour = _strain_colour(length / rest[k] - 1.0, amp)
        else:
            colour = _phase_colour(ph)
        thick = max(1, round(width * (0.8 + 2.4 * min(abs(amp), 0.5))))
        draw.line([p0, p1], fill=colour, width=thick)
    r = max(2.0, JOINT_RADIUS * cam.scale)
    for x, y in pos:
        cx, cy = cam(x, y)
        draw.ellipse(
            [cx - r, cy - r, cx + r, cy + r],
            fill=(255, 255, 255),
            outline=(40, 40, 40),
            width=_SUPERSAMPLE,
        )


def _dashed_vertical(draw: Any, x: float, h: int) -> None:
    dash = 6 * _SUPERSAMPLE
    for y in range(0, h, 2 * dash):
        draw.line([(x, y), (x, y + dash)], fill=_MARK, width=_SUPERSAMPLE)


def _canvas(size: tuple[int, int]) -> tuple[Any, Any, Any]:
    Image, ImageDraw = _pil()
    big = (size[0] * _SUPERSAMPLE, size[1] * _SUPERSAMPLE)
    img = Image.new("RGB", big, _BACKGROUND)
    return Image, img, ImageDraw.Draw(img)


def _finish(img: Any, size: tuple[int, int]) -> Any:
    return img.reduce(_SUPERSAMPLE) if img.size[0] == size[0] * _SUPERSAMPLE else img


def _palette() -> Any:
    """A GIF palette holding every colour drawn, and blends of each with the background."""
    Image, _ = _pil()
    base = [_BACKGROUND, _GROUND, _BLOCK, _BONE, _TEXT, _MARK, (214, 196, 170), (255, 255, 255)]
    base += [(40, 40, 40), (90, 90, 100)]
    base += [_strain_colour(t / 8.0, 1.0) for t in range(-8, 9)]
    colours = []
    for c in base:
        for w in (1.0, 0.66, 0.33):
            colours.append(
                tuple(round(w * a + (1 - w) * b) for a, b in zip(c, _BACKGROUND, strict=True))
            )
    swatch = Image.new("RGB", (len(colours), 1))
    swatch.putdata(colours)
    return swatch.quantize(colors=min(256, len(colours)), method=Image.Quantize.MEDIANCUT)


def _rest_lengths(view: WalkerView) -> np.ndarray:
    s = view.spawn
    return np.array([max(float(np.hypot(*(s[a] - s[b]))), 1e-9) for a, b, _, _ in view.muscles])


def _span(points: np.ndarray, minimum: float) -> tuple[float, float, float]:
    """Width of the view, lowest y, and highest y covering ``points`` with a margin."""
    width = float(np.ptp(points[..., 0])) if points.size else 0.0
    top = float(points[..., 1].max()) if points.size else 0.0
    return max(minimum, 1.6 * width + 6.0), -3.0, top + 3.0


def render_body(view: WalkerView, path: str | Path, size: tuple[int, int] = (640, 480)) -> Path:
    """Draw the walker as spawned on its terrain to a PNG at ``path``; returns the path."""
    path = Path(path)
    span, y_low, y_high = _span(view.spawn, 20.0)
    span = max(span, (y_high - y_low) * size[0] / size[1])
    _, img, draw = _canvas(size)
    cam = _Camera(img.size, span, y_low)
    cam.cx = float((view.spawn[:, 0].min() + view.spawn[:, 0].max()) / 2)
    _draw_terrain(draw, cam, view.terrain)
    _draw_walker(draw, cam, view.spawn, view.muscles, _rest_lengths(view), animate=False)
    bones = sum(m[2] == 0.0 for m in view.muscles)
    caption = (
        f"{view.title}  joints {len(view.spawn)}, bones {bones}, "
        f"muscles {len(view.muscles) - bones} (colour = phase, width = amplitude)"
    ).strip()
    out = _finish(img, size)
    _caption(out, caption)
    out.save(path, format="PNG", optimize=True)
    return path


def _caption(img: Any, text: str, line: int = 0) -> None:
    _, ImageDraw = _pil()
    ImageDraw.Draw(img).text((8, 6 + 14 * line), text, fill=_TEXT)


def render_gait(
    view: WalkerView,
    path: str | Path,
    size: tuple[int, int] = (640, 360),
    max_frames: int = 200,
) -> Path:
    """Animate the recorded trajectory to a looping GIF at ``path``; returns the path.

    The camera follows the centre of mass; the frame rate is the recording rate (frames are
    dropped evenly beyond ``max_frames``).

    Raises:
        ValueError: the view holds no frames.
    """
    path = Path(path)
    if len(view.frames) == 0:
        raise ValueError("no recorded frames to animate; evaluate with record_fps > 0")
    index = np.unique(np.linspace(0, len(view.frames) - 1, min(max_frames, len(view.frames))))
    frames = view.frames[index.astype(int)]
    times = view.times[index.astype(int)] if len(view.times) == len(view.frames) else None
    extent = float(max(np.ptp(f[:, 0]) for f in frames))
    span = max(30.0, 2.2 * extent + 8.0)
    top = float(frames[..., 1].max())
    span = max(span, (top + 6.0) * size[0] / size[1])
    rest = _rest_lengths(view)
    start_idx = 0
    if times is not None:
        start_idx = int(np.argmin(np.abs(times)))
    start_x = float(frames[start_idx][:, 0].mean())
    Image, _ = _pil()
    palette = _palette()
    images = []
    for k, pos in enumerate(frames):
        _, img, draw = _canvas(size)
        cam = _Camera(img.size, span, -3.0)
        cam.cx = float(pos[:, 0].mean())
        _draw_terrain(draw, cam, view.terrain)
        _draw_ticks(draw, cam)
        _dashed_vertical(draw, cam(start_x, 0.0)[0], img.size[1])
        _draw_walker(draw, cam, pos, view.muscles, rest, animate=True)
        out = _finish(img, size)
        dx = float(pos[:, 0].mean()) - start_x
        when = f"t = {times[k]:+.2f} s" if times is not None else f"frame {k}"
        phase = "  (settling)" if times is not None and times[k] < 0 else ""
        _caption(out, view.title)
        _caption(out, f"{when}{phase}   dx = {dx:+.2f} units", line=1)
        images.append(out.quantize(palette=palette, dither=Image.Dither.NONE))
    if times is not None and len(times) > 1:
        duration = max(20, round(1000 * float(np.median(np.diff(times)))))
    else:
        duration = 66
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=duration,
        loop=0,
        optimize=False,
    )
    return path


def _draw_ticks(draw: Any, cam: _Camera) -> None:
    """Marks on the ground every 5 units, so motion is visible while the camera follows."""
    lo, hi = cam.x_range
    for x in range(math.floor(lo / 5) * 5, math.ceil(hi / 5) * 5 + 1, 5):
        px, py = cam(float(x), 0.0)
        tall = 8 if x % 25 == 0 else 4
        draw.line([(px, py), (px, py + tall * _SUPERSAMPLE)], fill=_GROUND, width=_SUPERSAMPLE)
