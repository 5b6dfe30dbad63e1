"""Inline SVG pictures drawn from stored data: a Sodarace walker's body and its gait (animated
with SVG's own ``<animate>`` elements, so no script runs), and a circle packing.

SVG rather than PNG: it stays sharp at any zoom, it is text (small for these drawings), and an
inline ``<svg>`` element needs no namespace URL in an HTML document. Every number comes from
plain data and is checked (finite, right shape) before it is drawn; a bad value raises
``ValueError`` naming it, which the caller turns into a note.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Mapping, Sequence
from typing import Any

from evolm.report.views.common import esc, is_number

__all__ = ["MAX_ANIMATION_CHARS", "gait_svg", "packing_svg", "walker_parts", "walker_svg"]

_BONE = "#3c3c42"
_GROUND = "#785634"
_SOIL = "#d6c4aa"
_BLOCK = "#9696a0"
MAX_ANIMATION_CHARS = 280_000
"""Target size of one gait animation; frames are dropped evenly to stay under it."""


def _phase_colour(phase: float) -> str:
    """Muscle colour: hue = phase / 2 pi (as :mod:`evolm.domains.sodarace.render` draws it)."""
    r, g, b = colorsys.hsv_to_rgb((phase / (2 * math.pi)) % 1.0, 0.75, 0.85)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def _points(value: Any, what: str) -> list[tuple[float, float]]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"{what} is not a list of points")
    out = []
    for p in value:
        if not (isinstance(p, Sequence) and len(p) == 2 and all(is_number(v) for v in p)):
            raise ValueError(f"{what} holds {p!r:.40}, not a point [x, y] of finite numbers")
        out.append((float(p[0]), float(p[1])))
    return out


def _muscles(value: Any, joints: int) -> list[tuple[int, int, float, float]]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError("the walker's muscles are not a list")
    out = []
    for m in value:
        ok = isinstance(m, Sequence) and len(m) == 4
        if ok:
            a, b, amp, ph = m
            ok = (
                all(isinstance(j, int) and not isinstance(j, bool) for j in (a, b))
                and 0 <= a < joints
                and 0 <= b < joints
                and is_number(amp)
                and is_number(ph)
            )
        if not ok:
            raise ValueError(f"a muscle {m!r:.60} is not [joint, joint, amplitude, phase]")
        out.append((int(a), int(b), float(amp), float(ph)))
    return out


def walker_parts(
    walker: Any,
) -> tuple[list[tuple[float, float]], list[tuple[int, int, float, float]]]:
    """The joints and muscles of ``{"joints": [...], "muscles": [...]}``, checked.

    Raises:
        ValueError: the walker is not of that form (the message says what is wrong).
    """
    if not isinstance(walker, Mapping):
        raise ValueError("the stored walker is not a map of joints and muscles")
    joints = _points(walker.get("joints"), "the walker's joints")
    if not joints:
        raise ValueError("the stored walker has no joints")
    return joints, _muscles(walker.get("muscles"), len(joints))


def _walker_lines(
    pos: Sequence[tuple[float, float]],
    muscles: Sequence[tuple[int, int, float, float]],
    to_px: Any,
    unit: float,
) -> list[str]:
    """One ``<line>`` per bone and muscle (bones first, under the muscles), static."""
    out = []
    order = sorted(range(len(muscles)), key=lambda k: muscles[k][2] != 0.0)
    for k in order:
        a, b, amp, ph = muscles[k]
        (x1, y1), (x2, y2) = to_px(*pos[a]), to_px(*pos[b])
        if amp == 0.0:
            kind, colour, width = "bone", _BONE, 0.35 * unit
        else:
            kind, colour = "muscle", _phase_colour(ph)
            width = 0.35 * unit * (0.8 + 2.4 * min(abs(amp), 0.5))
        out.append(
            f'<line class="{kind}" data-k="{k}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" '
            f'y2="{y2:.1f}" stroke="{colour}" stroke-width="{width:.1f}" '
            'stroke-linecap="round"/>'
        )
    return out


def walker_svg(walker: Any, width: int = 320, height: int = 240, caption: str = "") -> str:
    """The walker's body as an inline SVG: one ``<line>`` per bone (grey) and muscle (colour =
    phase, width = amplitude), a disc per joint, on a ground line under its lowest joint.

    Raises:
        ValueError: ``walker`` is not a valid ``{"joints", "muscles"}`` map.
    """
    joints, muscles = walker_parts(walker)
    xs, ys = [x for x, _ in joints], [y for _, y in joints]
    lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
    span = max(hi_x - lo_x, (hi_y - lo_y) * width / height, 4.0) * 1.25 + 2.0
    unit = width / span
    cx = (lo_x + hi_x) / 2
    ground = lo_y - 0.3  # joints are 0.3 units in radius (the simulator's JOINT_RADIUS)
    base = height - 24.0

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (x - cx) * unit + width / 2, base - (y - ground) * unit

    parts = [
        f'<svg class="evolm-walker" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="walker body">',
        f'<rect width="{width}" height="{height}" fill="#f6f6f0"/>',
        f'<rect class="ground" x="0" y="{base:.1f}" width="{width}" height="{height - base:.1f}" '
        f'fill="{_SOIL}" stroke="{_GROUND}" stroke-width="2"/>',
        *_walker_lines(joints, muscles, to_px, unit),
    ]
    r = max(2.0, 0.3 * unit)
    for x, y in joints:
        px, py = to_px(x, y)
        parts.append(
            f'<circle class="joint" cx="{px:.1f}" cy="{py:.1f}" r="{r:.1f}" fill="#fff" '
            'stroke="#282828" stroke-width="1"/>'
        )
    bones = sum(m[2] == 0.0 for m in muscles)
    text = caption or f"{len(joints)} joints, {bones} bones, {len(muscles) - bones} muscles"
    parts.append(f'<text x="6" y="14" font-size="11" fill="#1e1e1e">{esc(text)}</text>')
    if not caption:  # the legend on a line of its own: one line overflowed a narrow picture
        parts.append(
            '<text x="6" y="27" font-size="10" fill="#555">colour = phase, width = amplitude</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _animated_body(
    frames: Sequence[Sequence[tuple[float, float]]],
    muscles: Sequence[tuple[int, int, float, float]],
    to_px: Any,
    unit: float,
    dur: str,
) -> list[str]:
    """The moving walker as a few ``<path>`` elements whose ``d`` is animated frame by frame:
    one path per look (bones; muscles grouped by phase colour and amplitude width), one
    ``M x0 y0 L x1 y1`` segment per bone or muscle, and the joints as round dots. An element per
    muscle with four ``<animate>`` children would cost ~400 bytes of markup before any data;
    a path's frame is just its coordinates, so large walkers keep more frames."""
    looks: dict[tuple[str, str, float], list[int]] = {}
    for k, (_, _, amp, ph) in enumerate(muscles):
        if amp == 0.0:
            key = ("bone", _BONE, round(0.35 * unit, 1))
        else:
            hue = round((ph / (2 * math.pi)) % 1.0 * 12) % 12 * 2 * math.pi / 12
            thick = 0.35 * unit * (0.8 + 2.4 * min(abs(amp), 0.5))
            key = ("muscle", _phase_colour(hue), round(thick * 2) / 2)
        looks.setdefault(key, []).append(k)
    order = sorted(looks, key=lambda key: key[0] != "bone")

    def segments(frame: Sequence[tuple[float, float]], ks: list[int]) -> str:
        out = []
        for k in ks:
            (x1, y1), (x2, y2) = to_px(*frame[muscles[k][0]]), to_px(*frame[muscles[k][1]])
            out.append(f"M{x1:.1f} {y1:.1f}L{x2:.1f} {y2:.1f}")
        return "".join(out)

    def dots(frame: Sequence[tuple[float, float]]) -> str:
        return "".join(f"M{x:.1f} {y:.1f}h0" for x, y in (to_px(*p) for p in frame))

    parts = []
    for kind, colour, thick in order:
        ks = looks[(kind, colour, thick)]
        values = ";".join(segments(f, ks) for f in frames)
        parts.append(
            f'<path class="{kind}" data-n="{len(ks)}" d="{segments(frames[0], ks)}" '
            f'stroke="{colour}" stroke-width="{thick:.1f}" stroke-linecap="round" fill="none">'
            f'<animate attributeName="d" values="{values}" {dur}/></path>'
        )
    r = max(2.0, 0.3 * unit)
    values = ";".join(dots(f) for f in frames)
    for cls, colour, w in (("joint-edge", "#282828", 2 * r + 2), ("joints", "#fff", 2 * r)):
        parts.append(
            f'<path class="{cls}" data-n="{len(frames[0])}" d="{dots(frames[0])}" '
            f'stroke="{colour}" stroke-width="{w:.1f}" stroke-linecap="round" fill="none">'
            f'<animate attributeName="d" values="{values}" {dur}/></path>'
        )
    return parts


def gait_svg(extras: Mapping[str, Any], width: int = 480, height: int = 270) -> str:
    """An animated SVG of a recorded gait (``extras`` of a Sodarace evaluation made with
    ``record_fps`` > 0): the camera follows the centre of mass over the terrain, with ground
    ticks every 5 units, looping; frames are dropped evenly to keep the SVG under
    :data:`MAX_ANIMATION_CHARS`.

    Raises:
        ValueError: the extras lack the recorded trajectory or hold malformed values.
    """
    missing = [k for k in ("walker", "frames", "terrain_geometry") if k not in extras]
    if missing:
        raise ValueError(f"the evaluation recorded no trajectory (no {', '.join(missing)})")
    joints, muscles = walker_parts(extras["walker"])
    raw = extras["frames"]
    if not isinstance(raw, Sequence) or not raw:
        raise ValueError("the recorded trajectory has no frames")
    frames = [_points(f, "a frame") for f in raw]
    if any(len(f) != len(joints) for f in frames):
        raise ValueError("a frame's joint count differs from the walker's")
    times = extras.get("times")
    dt, start_frame = 1 / 15, 0
    if (
        isinstance(times, Sequence)
        and len(times) == len(frames) > 1
        and all(is_number(t) for t in times)
    ):
        dt = max(1e-3, (float(times[-1]) - float(times[0])) / (len(times) - 1))
        # measurement starts at t = 0, after the settling frames
        start_frame = min(range(len(times)), key=lambda i: abs(float(times[i])))
    start_com = sum(x for x, _ in frames[start_frame]) / len(joints)
    per_frame = 24 * len(muscles) + 26 * len(joints) + 8
    keep = max(2, min(len(frames), MAX_ANIMATION_CHARS // max(per_frame, 1)))
    step = (len(frames) - 1) / (keep - 1) if keep > 1 else 1.0
    index = sorted({round(i * step) for i in range(keep)})
    frames = [frames[i] for i in index]
    duration = dt * (index[-1] - index[0]) if len(index) > 1 else 1.0
    duration = max(duration, 0.5)
    coms = [sum(x for x, _ in f) / len(f) for f in frames]
    extent = max(max(x for x, _ in f) - min(x for x, _ in f) for f in frames)
    top = max(max(y for _, y in f) for f in frames)
    span = max(30.0, 2.2 * extent + 8.0, (top + 6.0) * width / height)
    unit = width / span
    base = height - 3.0 * unit

    def to_px(x: float, y: float) -> tuple[float, float]:
        return x * unit, base - y * unit

    geo = extras["terrain_geometry"]
    ground = _points(geo.get("ground") if isinstance(geo, Mapping) else None, "the ground")
    blocks_raw = geo.get("blocks", []) if isinstance(geo, Mapping) else []
    blocks = [_points(b, "a terrain block") for b in blocks_raw or []]
    lo = min(coms) - span
    hi = max(coms) + span
    parts = [
        f'<svg class="evolm-gait" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="walker gait animation">',
        f'<rect width="{width}" height="{height}" fill="#f6f6f0"/>',
        '<g class="world">',
    ]
    shifts = ";".join(f"{width / 2 - c * unit:.1f},0" for c in coms)
    dur = f'dur="{duration:.3f}s" repeatCount="indefinite"'
    parts.append(
        f'<animateTransform attributeName="transform" type="translate" values="{shifts}" {dur}/>'
    )
    clipped = [(x, y) for x, y in ground if lo <= x <= hi] or ground
    poly = " ".join(f"{px:.1f},{py:.1f}" for px, py in (to_px(x, y) for x, y in clipped))
    if clipped:
        x0, x1 = to_px(clipped[0][0], 0)[0], to_px(clipped[-1][0], 0)[0]
        parts.append(
            f'<polygon points="{poly} {x1:.1f},{height + 10} {x0:.1f},{height + 10}" '
            f'fill="{_SOIL}" stroke="{_GROUND}" stroke-width="2"/>'
        )
    for block in blocks:
        pts = " ".join(f"{px:.1f},{py:.1f}" for px, py in (to_px(x, y) for x, y in block))
        parts.append(f'<polygon points="{pts}" fill="{_BLOCK}" stroke="#5a5a64"/>')
    for tick in range(math.floor(lo / 5) * 5, math.ceil(hi / 5) * 5 + 1, 5):
        px, py = to_px(float(tick), 0.0)
        tall = 8 if tick % 25 == 0 else 4
        parts.append(f'<path d="M{px:.1f} {py:.1f}v{tall}" stroke="{_GROUND}" stroke-width="1"/>')
    start = to_px(start_com, 0)[0]
    parts.append(
        f'<path d="M{start:.1f} 0V{height}" stroke="#aaa" stroke-dasharray="6 6" fill="none"/>'
    )
    parts += _animated_body(frames, muscles, to_px, unit, dur)
    parts.append("</g>")
    dx = coms[-1] - start_com
    parts.append(
        f'<text x="6" y="14" font-size="11" fill="#1e1e1e">{len(frames)} frames over '
        f"{duration:.1f} s, looping; moved {dx:+.2f} units after settling</text></svg>"
    )
    return "".join(parts)


def packing_svg(centers: Any, radii: Any, size: int = 320) -> str:
    """Circles in the unit square as an inline SVG: one ``<circle>`` per circle (shaded by
    radius), the square's outline, y pointing up.

    Raises:
        ValueError: ``centers`` is not a list of points or ``radii`` not a list of as many
            finite numbers.
    """
    points = _points(centers, "the centres")
    if not isinstance(radii, Sequence) or isinstance(radii, str):
        raise ValueError("the radii are not a list")
    if len(radii) != len(points) or not all(is_number(r) for r in radii):
        raise ValueError(f"expected {len(points)} finite radii, got {len(radii)} values")
    rs = [float(r) for r in radii]
    pad = 8
    scale = size - 2 * pad
    top = max(rs, default=1.0) or 1.0
    parts = [
        f'<svg class="evolm-packing" viewBox="0 0 {size} {size}" width="{size}" '
        f'height="{size}" role="img" aria-label="circle packing">',
        f'<rect class="square" x="{pad}" y="{pad}" width="{scale}" height="{scale}" '
        'fill="#fbfbf7" stroke="#333" stroke-width="1.5"/>',
    ]
    for i, ((x, y), r) in enumerate(zip(points, rs, strict=True)):
        light = 80 - 35 * (r / top)
        parts.append(
            f'<circle class="disc" data-i="{i}" cx="{pad + x * scale:.2f}" '
            f'cy="{pad + (1 - y) * scale:.2f}" r="{max(r, 0.0) * scale:.2f}" '
            f'fill="hsl(205,60%,{light:.0f}%)" fill-opacity="0.85" stroke="#234" '
            'stroke-width="0.6"><title>'
            f"circle {i}: centre ({x:.4f}, {y:.4f}), radius {r:.4f}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
