"""Small HTML pieces every domain view shares: escaping, notes, numbers, tables, code, PNGs.

Views are fragments of one static report file: everything is escaped here (a program's code,
an LLM's text and an evaluator's strings are hostile data), no element refers to anything
outside the fragment, and a value of an unexpected type becomes text, never an exception.
"""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

import numpy as np

__all__ = [
    "MAX_CODE_CHARS",
    "code_block",
    "esc",
    "fmt",
    "is_number",
    "note",
    "png_data_uri",
    "scalar_items",
    "table",
    "wrap",
]

MAX_CODE_CHARS = 20_000
"""Characters of a program or text shown in a view (the rest is cut, with a note)."""


def esc(value: Any) -> str:
    """``value`` as text, escaped for HTML content and attribute values."""
    return escape(value if isinstance(value, str) else str(value), quote=True)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite real number (not a bool)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float | np.integer | np.floating)
        and math.isfinite(float(value))
    )


def fmt(value: Any) -> str:
    """A short, escaped rendering of a scalar: numbers to 4 significant digits, ``NaN`` and
    infinities by name, strings cut to 200 characters."""
    if isinstance(value, bool) or value is None:
        return esc(value)
    if isinstance(value, int | np.integer):
        return esc(int(value))
    if isinstance(value, float | np.floating):
        x = float(value)
        return esc(f"{x:.4g}" if math.isfinite(x) else repr(x))
    text = str(value)
    return esc(text if len(text) <= 200 else text[:197] + "...")


def note(text: str) -> str:
    """A short message in place of a view (why it cannot be drawn)."""
    return f'<p class="evolm-note"><em>{esc(text)}</em></p>'


def wrap(domain: str, body: str) -> str:
    """The outer element of every fragment (one class per domain, for the report's styles)."""
    cls = "".join(c if c.isalnum() else "-" for c in domain)[:40]
    return f'<div class="evolm-view evolm-view-{cls}">{body}</div>'


def code_block(code: Any, label: str = "") -> str:
    """``code`` in a ``<pre>`` block (cut to :data:`MAX_CODE_CHARS`), with an optional caption."""
    text = code if isinstance(code, str) else str(code)
    cut = ""
    if len(text) > MAX_CODE_CHARS:
        cut = note(f"{len(text) - MAX_CODE_CHARS} more characters not shown")
        text = text[:MAX_CODE_CHARS]
    head = f"<figcaption>{esc(label)}</figcaption>" if label else ""
    pre = f'<pre style="overflow:auto"><code>{esc(text)}</code></pre>'
    return f'<figure class="evolm-code" style="margin:0.5em 0">{head}{pre}{cut}</figure>'


def table(rows: Iterable[tuple[Any, Any]], head: tuple[str, str] | None = None) -> str:
    """A two-column table of (name, value) rows; values are formatted with :func:`fmt`."""
    out = ['<table class="evolm-table">']
    if head is not None:
        out.append(f"<thead><tr><th>{esc(head[0])}</th><th>{esc(head[1])}</th></tr></thead>")
    out.append("<tbody>")
    for name, value in rows:
        out.append(f"<tr><th>{esc(name)}</th><td>{fmt(value)}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def scalar_items(mapping: Mapping[str, Any], limit: int = 40) -> list[tuple[str, Any]]:
    """The scalar values of ``mapping`` (numbers, bools, strings, None), one level of nested
    dicts flattened as ``outer.inner``; lists are summarised by their length."""
    out: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        if len(out) >= limit:
            break
        if isinstance(value, Mapping):
            for k, v in value.items():
                if v is None or isinstance(v, bool | int | float | str):
                    out.append((f"{key}.{k}", v))
        elif isinstance(value, list | tuple):
            out.append((str(key), f"[{len(value)} values]"))
        elif value is None or isinstance(value, bool | int | float | str | np.number):
            out.append((str(key), value))
    return out[:limit]


def png_data_uri(pixels: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of an RGB image (``(h, w, 3)``, uint8 or floats in
    [0, 1]), encoded with the standard library (an 8-bit truecolour PNG, no filtering)."""
    img = np.asarray(pixels)
    if img.dtype != np.uint8:
        img = np.clip(np.nan_to_num(img.astype(np.float64)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (h, w, 3) image, got shape {img.shape}")
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
