"""msgpack codec for results coming out of the sandbox, and the pipe framing.

Sandboxed programs are hostile, so what they send back is data, never code: msgpack, with numpy
arrays as an extension type (a dtype from a fixed list of numeric types, a shape and the raw bytes),
checked on the way in (dtype allowed, shape consistent with the byte count, total size capped).
pickle is never used, so an object with ``__reduce__`` cannot run anything in the engine: it is
simply not serialisable, and the evaluation becomes an ``error`` that says so.

Frames on every pipe are a 4-byte big-endian length followed by that many bytes of msgpack.

Decoding is capped twice over, so that a small frame cannot become a huge or pathological object
in the engine: at most :data:`MAX_DECODED_ITEMS` values (every element of every list and map is
counted while decoding, and decoding stops at the cap, so an 8 MiB frame of empty lists cannot
grow into gigabytes), and at most :data:`MAX_DEPTH` levels of nested lists and maps (deeper
values would overflow the recursion of whatever walks them later, e.g. JSON encoding). A result
over either cap is an ``error`` evaluation that names the cap.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
import numpy as np

from evolm.types import Evaluation, Status

__all__ = [
    "MAX_DECODED_ITEMS",
    "MAX_DEPTH",
    "MAX_FRAME_BYTES",
    "MAX_RESULT_BYTES",
    "NDARRAY_EXT",
    "DecodeLimit",
    "ResultTooLarge",
    "decode_evaluation",
    "decode_run_output",
    "decode_value",
    "encode_evaluation",
    "encode_run_output",
    "encode_value",
    "frame",
    "frame_length",
]

MAX_RESULT_BYTES = 8 * 1024 * 1024
"""Largest encoded evaluation a program may send back (arrays included)."""

MAX_FRAME_BYTES = MAX_RESULT_BYTES + 64 * 1024
"""Largest frame on a pipe: a result plus the zygote's small envelope around it."""

MAX_DECODED_ITEMS = 1_000_000
"""Most values (list elements, map keys and values, counted over the whole frame) one decoded
frame may hold; an array counts as one value."""

MAX_DEPTH = 64
"""Most levels of nested lists and maps in one decoded frame."""

NDARRAY_EXT = 1
"""msgpack extension type code of a numpy array."""

_MAX_NDIM = 32
_HEADER = struct.Struct(">I")

# Little-endian (or byte-order-free) numeric dtypes only: no objects, strings, records, datetimes.
_DTYPES = frozenset(
    np.dtype(t).newbyteorder("<").str
    for t in (
        np.bool_,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
        np.complex64,
        np.complex128,
    )
)


class ResultTooLarge(ValueError):
    """A value is over :data:`MAX_RESULT_BYTES`."""


class DecodeLimit(ValueError):
    """A frame decodes to more than :data:`MAX_DECODED_ITEMS` values or :data:`MAX_DEPTH` levels."""


def frame(payload: bytes) -> bytes:
    """Length-prefix ``payload`` for a pipe."""
    return _HEADER.pack(len(payload)) + payload


def frame_length(header: bytes) -> int:
    """The payload length announced by a 4-byte frame header."""
    return int(_HEADER.unpack(header)[0])


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.newbyteorder("<").str not in _DTYPES:
            raise TypeError(f"numpy arrays of dtype {obj.dtype} cannot be sent back")
        if obj.nbytes > MAX_RESULT_BYTES:
            raise ResultTooLarge(f"an array of {obj.nbytes} bytes")
        arr = np.ascontiguousarray(obj, dtype=obj.dtype.newbyteorder("<"))
        body = msgpack.packb([arr.dtype.str, list(arr.shape), arr.tobytes()], use_bin_type=True)
        return msgpack.ExtType(NDARRAY_EXT, body)
    if isinstance(obj, np.bool_ | np.integer | np.floating):
        return obj.item()
    raise TypeError(f"cannot send back an object of type {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code != NDARRAY_EXT:
        raise ValueError(f"unknown msgpack extension type {code}")
    parts = msgpack.unpackb(data, raw=False, use_list=True)
    if not (isinstance(parts, list) and len(parts) == 3):
        raise ValueError("array extension is not [dtype, shape, bytes]")
    dtype, shape, raw = parts
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise ValueError(f"array dtype {dtype!r} is not an allowed numeric type")
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_NDIM
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise ValueError(f"array shape {shape!r} is not a list of at most {_MAX_NDIM} sizes")
    if not isinstance(raw, bytes):
        raise ValueError("array data is not bytes")
    dt = np.dtype(dtype)
    if math.prod(shape) * dt.itemsize != len(raw):
        raise ValueError(f"array of shape {shape} and dtype {dtype} needs a different byte count")
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def encode_value(value: Any) -> bytes:
    """msgpack of ``value``.

    Raises:
        TypeError: a value that is not None, bool, int, float, str, bytes, list, tuple, dict
            with str keys, a numpy scalar or a numeric numpy array.
        ValueError: a value nested too deeply or too large.
    """
    return msgpack.packb(value, default=_default, use_bin_type=True, strict_types=False)


class _Counter:
    """Hooks that count the values of a frame as msgpack builds its lists and maps, and stop it
    at :data:`MAX_DECODED_ITEMS` (hooks run as each container is finished, innermost first)."""

    def __init__(self) -> None:
        self.items = 0

    def _add(self, n: int) -> None:
        self.items += n
        if self.items > MAX_DECODED_ITEMS:
            raise DecodeLimit(
                f"result too large after decoding: over {MAX_DECODED_ITEMS} values in lists and "
                "maps; send fewer values back (a numpy array counts as one)"
            )

    def list_hook(self, items: list[Any]) -> list[Any]:
        self._add(1 + len(items))
        return items

    def pairs_hook(self, pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        self._add(1 + 2 * len(pairs))
        return dict(pairs)


def _check_depth(value: Any) -> None:
    """Raise :class:`DecodeLimit` when lists and maps nest deeper than :data:`MAX_DEPTH`."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, list | dict):
                if depth + 1 > MAX_DEPTH:
                    raise DecodeLimit(
                        f"result nested too deeply: lists and maps over {MAX_DEPTH} levels deep"
                    )
                stack.append((child, depth + 1))


def decode_value(blob: bytes) -> Any:
    """Strict inverse of :func:`encode_value` (raises ``ValueError`` on anything malformed, and
    :class:`DecodeLimit`, a ``ValueError``, on a frame over :data:`MAX_DECODED_ITEMS` values or
    :data:`MAX_DEPTH` levels)."""
    if len(blob) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(blob)} bytes is over the {MAX_FRAME_BYTES} cap")
    counter = _Counter()
    try:
        value = msgpack.unpackb(
            blob,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_ext_hook,
            list_hook=counter.list_hook,
            object_pairs_hook=counter.pairs_hook,
            max_array_len=MAX_DECODED_ITEMS,
            max_map_len=MAX_DECODED_ITEMS,
        )
    except msgpack.StackError as exc:  # msgpack's own nesting limit, far above MAX_DEPTH
        raise DecodeLimit(
            f"result nested too deeply: lists and maps over {MAX_DEPTH} levels deep"
        ) from exc
    except ValueError as exc:
        if "exceeds max_" in str(exc):  # one list or map longer than the whole cap
            raise DecodeLimit(
                f"result too large after decoding: a list or map of over {MAX_DECODED_ITEMS} "
                "values; send fewer values back (a numpy array counts as one)"
            ) from exc
        raise
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    if isinstance(value, list | dict):
        _check_depth(value)
    return value


def _encode_capped(value: Any) -> bytes | str:
    """msgpack of ``value``, or why it cannot be sent back (not serialisable, or too large)."""
    try:
        blob = encode_value(value)
    except ResultTooLarge as exc:
        return f"result too large ({exc}; the cap is {MAX_RESULT_BYTES} bytes)"
    except (TypeError, ValueError, OverflowError) as exc:
        return (
            f"result is not serialisable ({exc}); return numbers, strings, lists, dicts or arrays"
        )
    if len(blob) > MAX_RESULT_BYTES:
        return f"result too large ({len(blob)} bytes encoded; the cap is {MAX_RESULT_BYTES} bytes)"
    return blob


def encode_evaluation(ev: Evaluation) -> bytes:
    """Encode an evaluation; one that cannot be sent back becomes an ``error`` saying why."""
    d = {
        "status": ev.status.value,
        "fitness": ev.fitness,
        "descriptors": None if ev.descriptors is None else list(ev.descriptors),
        "extras": ev.extras,
        "wall_time": ev.wall_time,
        "cpu_time": ev.cpu_time,
        "error": ev.error,
    }
    blob = _encode_capped(d)
    if isinstance(blob, bytes):
        return blob
    d.update(status=Status.ERROR.value, fitness=None, descriptors=None, extras={}, error=blob)
    return encode_value(d)


def encode_run_output(data: Any) -> bytes:
    """Encode what a two-phase domain's ``run`` returned, for its scorer: ``{"data": data}``, or
    an ``error`` evaluation when ``data`` cannot be sent (not plain data, or too large)."""
    blob = _encode_capped({"data": data})
    if isinstance(blob, bytes):
        return blob
    return encode_evaluation(Evaluation.failure(Status.ERROR, blob))


def decode_run_output(blob: bytes) -> tuple[Any, Evaluation | None]:
    """What a two-phase domain's program child sent: ``(data, None)``, or ``(None, failure)``.

    The failure is the program's own (a syntax error, an exception, a killed child), or an
    ``error`` naming what was wrong with the frame. An evaluation with status ``ok`` is never
    passed on: the program does not score itself (a forged frame becomes an ``error``).
    """
    try:
        d = decode_value(blob)
    except DecodeLimit as exc:
        return None, Evaluation.failure(Status.ERROR, str(exc))
    except ValueError as exc:
        return None, Evaluation.failure(Status.ERROR, f"malformed result from the program: {exc}")
    if isinstance(d, dict) and set(d) == {"data"}:
        return d["data"], None
    ev = decode_evaluation(blob)
    if ev.ok:
        return None, Evaluation.failure(
            Status.ERROR,
            "the program sent back an evaluation where its data belongs; this domain's score is "
            "computed by its scorer from the data, never taken from the program",
        )
    return None, ev


def _number(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ValueError(f"{what} is {type(x).__name__}, not a number")
    return float(x)


def decode_evaluation(blob: bytes) -> Evaluation:
    """Inverse of :func:`encode_evaluation`; anything malformed becomes an ``error`` evaluation."""
    try:
        d = decode_value(blob)
        if not isinstance(d, dict):
            raise ValueError("result is not a map")
        unknown = set(d) - {
            "status",
            "fitness",
            "descriptors",
            "extras",
            "wall_time",
            "cpu_time",
            "error",
        }
        if unknown:
            raise ValueError(f"unexpected keys {sorted(unknown)}")
        fitness, desc, extras, error = (
            d.get("fitness"),
            d.get("descriptors"),
            d.get("extras") or {},
            d.get("error"),
        )
        if not isinstance(d.get("status"), str):
            raise ValueError("status is not a string")
        if not isinstance(extras, dict):
            raise ValueError("extras is not a map")
        if error is not None and not isinstance(error, str):
            raise ValueError("error is not a string")
        if desc is not None and not isinstance(desc, list):
            raise ValueError("descriptors is not a list")
        return Evaluation(
            status=Status(d["status"]),
            fitness=None if fitness is None else _number(fitness, "fitness"),
            descriptors=None if desc is None else tuple(_number(x, "a descriptor") for x in desc),
            extras=extras,
            wall_time=_number(d.get("wall_time", 0.0), "wall_time"),
            cpu_time=_number(d.get("cpu_time", 0.0), "cpu_time"),
            error=error,
        )
    except DecodeLimit as exc:
        return Evaluation.failure(Status.ERROR, str(exc))
    except Exception as exc:
        return Evaluation.failure(Status.ERROR, f"malformed result from the sandbox: {exc}")
