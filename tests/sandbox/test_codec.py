"""The result codec: msgpack with numpy arrays as a checked extension type, never pickle."""

from __future__ import annotations

import os

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evolm.sandbox import codec
from evolm.types import Evaluation, Status

DTYPES = [
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
]


def ext(dtype: object, shape: object, data: object, code: int = codec.NDARRAY_EXT) -> bytes:
    body = msgpack.packb([dtype, shape, data], use_bin_type=True)
    return msgpack.packb({"a": msgpack.ExtType(code, body)}, use_bin_type=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_arrays_round_trip(dtype: type) -> None:
    a = (np.arange(24) % 5).astype(dtype).reshape(2, 3, 4)
    out = codec.decode_value(codec.encode_value({"a": a, "t": a.T, "e": a[:0], "z": a[0, 0, 0:1]}))
    for key, want in (("a", a), ("t", a.T), ("e", a[:0]), ("z", a[0, 0, 0:1])):
        assert out[key].dtype == want.dtype and out[key].shape == want.shape
        assert np.array_equal(out[key], want)
        assert out[key].flags.writeable


@pytest.mark.parametrize("dtype", [d for d in DTYPES if not issubclass(d, np.complexfloating)])
def test_numpy_scalars_become_python_numbers(dtype: type) -> None:
    x = dtype(1)
    assert codec.decode_value(codec.encode_value(x)) == x.item()


def test_big_endian_arrays_come_back_little_endian() -> None:
    a = np.arange(4, dtype=">i4")
    out = codec.decode_value(codec.encode_value(a))
    assert out.dtype == np.dtype("<i4") and out.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "value",
    [
        np.array(["a"], dtype=object),
        np.array(["abc"]),
        np.zeros(2, dtype=[("x", "<i4")]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
        object(),
        {1, 2},
        1 + 2j,
    ],
    ids=["object", "unicode", "record", "datetime", "object()", "set", "complex"],
)
def test_unsupported_values_are_refused(value: object) -> None:
    with pytest.raises(TypeError):
        codec.encode_value({"x": value})


def test_objects_with_reduce_are_never_pickled(tmp_path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with pytest.raises(TypeError):
        codec.encode_value(Evil())
    ev = codec.decode_evaluation(
        codec.encode_evaluation(Evaluation(Status.OK, 1.0, (0.0,), {"x": Evil()}))
    )
    assert ev.status is Status.ERROR and "not serialisable" in ev.error
    assert not marker.exists()


@pytest.mark.parametrize(
    "blob",
    [
        ext("|O", [1], b"\0" * 8),
        ext("<U1", [1], b"\0" * 4),
        ext("|V8", [1], b"\0" * 8),
        ext("<f8", [3], b"\0" * 16),  # byte count does not match the shape
        ext("<f8", [-1], b""),
        ext("<f8", [True], b"\0" * 8),
        ext("<f8", [1] * 40, b"\0" * 8),
        ext("<f8", [1], "not bytes"),
        ext("<f8", [1], b"\0" * 8, code=42),
        msgpack.packb({1: 2}),  # non-string key
        b"\xc1",
        msgpack.packb([1, 2])[:-1],
        msgpack.packb(1) + b"\x00",  # trailing bytes
        msgpack.packb({"a": msgpack.ExtType(codec.NDARRAY_EXT, b"\x93")}),
    ],
)
def test_malformed_input_raises_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        codec.decode_value(blob)


def test_oversized_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="cap"):
        codec.decode_value(b"\0" * (codec.MAX_FRAME_BYTES + 1))


def test_evaluations_round_trip() -> None:
    ev = Evaluation(Status.OK, 1.5, (0.25, 3.0), {"a": [1, "x"], "m": np.eye(2)}, 0.1, 0.2, None)
    out = codec.decode_evaluation(codec.encode_evaluation(ev))
    assert (out.status, out.fitness, out.descriptors) == (Status.OK, 1.5, (0.25, 3.0))
    assert out.extras["a"] == [1, "x"] and np.array_equal(out.extras["m"], np.eye(2))
    assert (out.wall_time, out.cpu_time, out.error) == (0.1, 0.2, None)
    fail = Evaluation.failure(Status.TIMEOUT, "too slow")
    assert codec.decode_evaluation(codec.encode_evaluation(fail)) == fail


def test_too_large_evaluations_become_errors() -> None:
    ev = Evaluation(Status.OK, 1.0, (0.0,), {"x": np.zeros(codec.MAX_RESULT_BYTES // 8 + 1)})
    out = codec.decode_evaluation(codec.encode_evaluation(ev))
    assert out.status is Status.ERROR and "large" in out.error


@pytest.mark.parametrize(
    "doc",
    [
        {"status": "bogus"},
        {"status": "ok", "fitness": "high"},
        {"status": "ok", "fitness": True},
        {"status": "ok", "descriptors": "abc"},
        {"status": "ok", "descriptors": [None]},
        {"status": "ok", "extras": [1]},
        {"status": "ok", "error": 3},
        {"status": "ok", "wall_time": "now"},
        {"status": "ok", "surprise": 1},
        [1, 2, 3],
    ],
)
def test_malformed_evaluations_decode_to_errors(doc: object) -> None:
    ev = codec.decode_evaluation(msgpack.packb(doc))
    assert ev.status is Status.ERROR and "malformed result" in ev.error


def test_frames() -> None:
    f = codec.frame(b"abc")
    assert codec.frame_length(f[:4]) == 3 and f[4:] == b"abc"


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_like)
def test_plain_data_round_trips(value: object) -> None:
    out = codec.decode_value(codec.encode_value(value))
    assert repr(out) == repr(value)  # repr: nan == nan


# --- decoding caps ---------------------------------------------------------------------------


def _result(extras: object) -> bytes:
    return msgpack.packb(
        {"status": "ok", "fitness": 1.0, "descriptors": [0.5], "extras": {"x": extras}}
    )


@pytest.mark.parametrize(
    "blob",
    [
        # one list longer than the cap: refused from its header, before anything is built
        _result([[]] * (codec.MAX_DECODED_ITEMS + 1)),
        # many lists, each small, together over the cap: stopped while decoding
        _result([[0] * 10 for _ in range(codec.MAX_DECODED_ITEMS // 10)]),
        # the same with maps
        _result([{"k": 0, "j": 1} for _ in range(codec.MAX_DECODED_ITEMS // 4)]),
    ],
    ids=["one long list", "many lists", "many maps"],
)
def test_results_too_large_after_decoding_become_errors(blob: bytes) -> None:
    assert len(blob) <= codec.MAX_RESULT_BYTES
    with pytest.raises(codec.DecodeLimit):
        codec.decode_value(blob)
    ev = codec.decode_evaluation(blob)
    assert ev.status is Status.ERROR and "too large after decoding" in ev.error
    assert str(codec.MAX_DECODED_ITEMS) in ev.error


@pytest.mark.parametrize("depth", [codec.MAX_DEPTH + 1, 200, 5000])
def test_results_nested_too_deeply_become_errors(depth: int) -> None:
    blob = b"\x81\xa6extras\x81\xa1x" + b"\x91" * depth + b"\xc0"  # {"extras": {"x": [[...]]}}
    with pytest.raises(codec.DecodeLimit):
        codec.decode_value(blob)
    ev = codec.decode_evaluation(blob)
    assert ev.status is Status.ERROR and "nested too deeply" in ev.error


def test_results_within_the_caps_decode() -> None:
    nested: object = 1.0
    for _ in range(codec.MAX_DEPTH - 3):  # the evaluation and extras maps are two levels more
        nested = [nested]
    blob = codec.encode_evaluation(Evaluation(Status.OK, 1.0, (0.5,), extras={"x": nested}))
    assert codec.decode_evaluation(blob).extras["x"] == nested
    many = list(range(codec.MAX_DECODED_ITEMS - 100))
    assert codec.decode_value(codec.encode_value(many)) == many


# --- run output of two-phase domains ----------------------------------------------------------


def test_run_output_round_trips_data() -> None:
    img = np.linspace(0, 1, 48).reshape(4, 4, 3)
    data, failed = codec.decode_run_output(codec.encode_run_output({"img": img, "n": [1, None]}))
    assert failed is None
    assert np.array_equal(data["img"], img) and data["n"] == [1, None]


def test_run_output_carries_failures_but_never_an_ok_evaluation() -> None:
    bad = Evaluation.failure(Status.INVALID, "no draw()")
    data, failed = codec.decode_run_output(codec.encode_evaluation(bad))
    assert data is None and failed is not None
    assert (failed.status, failed.error) == (Status.INVALID, "no draw()")
    forged = codec.encode_evaluation(Evaluation(Status.OK, 1e300, (0.5,)))
    data, failed = codec.decode_run_output(forged)
    assert data is None and failed is not None and failed.status is Status.ERROR
    assert "evaluation where its data belongs" in failed.error


@pytest.mark.parametrize(
    "blob",
    [b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"data": 1, "more": 2}), b"\x91" * 100],
    ids=["not msgpack", "a list", "extra keys", "deep"],
)
def test_malformed_run_output_is_an_error(blob: bytes) -> None:
    data, failed = codec.decode_run_output(blob)
    assert data is None and failed is not None and failed.status is Status.ERROR
    assert failed.error


def test_unsendable_run_output_is_an_error() -> None:
    data, failed = codec.decode_run_output(codec.encode_run_output(object()))
    assert data is None and failed is not None and "not serialisable" in failed.error
