"""The image domain: seeds, scoring, validation of draw()'s return value, failures, targets."""

from __future__ import annotations

import numpy as np
import pytest

from evolm.domains.base import get_domain, registered_domains
from evolm.domains.image import ImageDomain, make_target
from evolm.types import Status


def program(body: str, header: str = "import numpy as np\n\n") -> str:
    return f"{header}def draw():\n" + "".join(f"    {line}\n" for line in body.split("\n"))


@pytest.fixture(scope="module")
def domain() -> ImageDomain:
    return ImageDomain(target="circle", size=16)


def test_registered_and_built_by_name() -> None:
    assert "image" in registered_domains()
    d = get_domain("image", {"target": "square", "size": 24, "metric": "l1"})
    assert isinstance(d, ImageDomain)
    assert (d.target, d.size, d.metric) == ("square", 24, "l1")
    assert d.qd_offset == -1.0
    assert d.eval_timeout == 5.0


def test_unknown_parameter_is_value_error() -> None:
    with pytest.raises(ValueError, match="bad parameters"):
        get_domain("image", {"colour": "red"})


@pytest.mark.parametrize("size", [8, 32, 128])
def test_every_seed_is_ok(size: int) -> None:
    d = ImageDomain(size=size)
    seeds = d.seeds()
    assert len(seeds) >= 3
    for code in seeds:
        assert "import numpy" in code
        ev = d.evaluate(code, seed=1)
        assert ev.status is Status.OK, ev.error
        assert -1.0 <= ev.fitness <= 0.0  # type: ignore[operator]
        assert ev.checked(d.descriptor_space).ok
    fitnesses = {d.evaluate(code).fitness for code in seeds}
    assert len(fitnesses) == len(seeds)  # the seeds are different pictures


@pytest.mark.parametrize("target", ImageDomain.targets())
@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_perfect_program_scores_zero(target: str, metric: str) -> None:
    d = ImageDomain(target=target, size=20, metric=metric)
    code = (
        "from evolm.domains.image import make_target\n\n"
        f"def draw():\n    return make_target({target!r}, 20)\n"
    )
    ev = d.evaluate(code)
    assert ev.status is Status.OK, ev.error
    assert ev.fitness == 0.0
    assert ev.extras == {"target": target, "metric": metric}


def test_l1_and_l2_metrics() -> None:
    # A uniform picture at 0.5 against the square target: every pixel differs by a known amount.
    target = make_target("square", 16)
    diff = 0.5 - target
    code = program("return np.full((16, 16, 3), 0.5)")
    l2 = ImageDomain(target="square", size=16, metric="l2").evaluate(code)
    l1 = ImageDomain(target="square", size=16, metric="l1").evaluate(code)
    assert l2.fitness == pytest.approx(-np.sqrt(np.mean(diff**2)))
    assert l1.fitness == pytest.approx(-np.mean(np.abs(diff)))
    assert l1.fitness != pytest.approx(l2.fitness)


def test_worst_picture_is_bounded() -> None:
    # Against a white-background target, black everywhere is far but never below -1.
    ev = ImageDomain(target="square", size=16).evaluate(program("return np.zeros((16, 16, 3))"))
    assert -1.0 <= ev.fitness < -0.5  # type: ignore[operator]


def test_descriptors_are_mean_rgb(domain: ImageDomain) -> None:
    code = program(
        "img = np.zeros((16, 16, 3))\n"
        "img[:, :8, 0] = 1.0\n"
        "img[:4, :, 1] = 0.8\n"
        "img[..., 2] = 0.3\n"
        "return img"
    )
    ev = domain.evaluate(code)
    assert ev.descriptors == pytest.approx((0.5, 0.2, 0.3))
    assert domain.descriptor_space.names == ("mean_r", "mean_g", "mean_b")
    assert domain.descriptor_space.bounds == ((0.0, 1.0),) * 3


def test_uint8_is_scaled(domain: ImageDomain) -> None:
    ev = domain.evaluate(program("return np.full((16, 16, 3), 255, dtype=np.uint8)"))
    assert ev.ok
    assert ev.descriptors == pytest.approx((1.0, 1.0, 1.0))


def test_float32_and_tolerance_accepted(domain: ImageDomain) -> None:
    ev = domain.evaluate(program("return np.full((16, 16, 3), 1.0 + 1e-7, dtype=np.float32)"))
    assert ev.ok, ev.error
    assert max(ev.descriptors) <= 1.0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "expected_in_reason"),
    [
        ("return np.zeros((16, 16))", "shape (16, 16)"),
        ("return np.zeros((16, 16, 4))", "shape (16, 16, 4)"),
        ("return np.zeros((8, 8, 3))", "shape (8, 8, 3)"),
        ("return np.zeros((16, 16, 3, 1))", "shape (16, 16, 3, 1)"),
        ("return np.zeros((16, 16, 3), dtype=bool)", "dtype bool"),
        ("return np.zeros((16, 16, 3), dtype=np.int64)", "dtype int64"),
        ("return np.zeros((16, 16, 3), dtype=np.uint16)", "dtype uint16"),
        ("return np.zeros((16, 16, 3), dtype=complex)", "dtype complex128"),
        ("img = np.zeros((16, 16, 3))\nimg[0, 0, 0] = np.nan\nreturn img", "1 NaN or infinite"),
        ("return np.full((16, 16, 3), np.inf)", "768 NaN or infinite"),
        ("return np.full((16, 16, 3), 1.5)", "values in [1.5, 1.5]"),
        ("img = np.zeros((16, 16, 3))\nimg[3, 3, 1] = -0.01\nreturn img", "values in [-0.01, 0]"),
        ("return np.zeros((16, 16, 3)).tolist()", "returned list"),
        ("return None", "returned NoneType"),
    ],
)
def test_bad_pictures_are_invalid(domain: ImageDomain, body: str, expected_in_reason: str) -> None:
    ev = domain.evaluate(program(body))
    assert ev.status is Status.INVALID
    assert expected_in_reason in ev.error  # type: ignore[operator]
    assert "expected (16, 16, 3) float in [0, 1] or uint8" in ev.error  # type: ignore[operator]
    assert ev.fitness is None and ev.descriptors is None


def test_missing_draw_is_invalid(domain: ImageDomain) -> None:
    ev = domain.evaluate("import numpy as np\n\ndef paint():\n    return None\n")
    assert ev.status is Status.INVALID
    assert ev.error == "program defines no function draw()"


def test_draw_not_callable_is_invalid(domain: ImageDomain) -> None:
    ev = domain.evaluate("draw = 3\n")
    assert ev.status is Status.INVALID
    assert "draw is a int" in ev.error  # type: ignore[operator]


def test_syntax_error_is_invalid_with_line(domain: ImageDomain) -> None:
    ev = domain.evaluate("import numpy as np\n\ndef draw(:\n    return 1\n")
    assert ev.status is Status.INVALID
    assert ev.error.startswith("SyntaxError at line 3:")  # type: ignore[union-attr]


def test_exception_in_draw_is_error_with_line(domain: ImageDomain) -> None:
    code = program("x = 1\ny = [0]\nreturn y[x]")
    ev = domain.evaluate(code)
    assert ev.status is Status.ERROR
    assert ev.error == "IndexError: list index out of range (line 6)"


def test_exception_at_module_level_is_error(domain: ImageDomain) -> None:
    ev = domain.evaluate("import numpy as np\nraise RuntimeError('boom')\n")
    assert ev.status is Status.ERROR
    assert ev.error == "RuntimeError: boom (line 2)"


def test_exception_inside_numpy_reports_program_line(domain: ImageDomain) -> None:
    ev = domain.evaluate(program("return np.zeros((16, 16, 3)).reshape(7, 5)"))
    assert ev.status is Status.ERROR
    assert ev.error.startswith("ValueError: cannot reshape")  # type: ignore[union-attr]
    assert ev.error.endswith("(line 4)")  # type: ignore[union-attr]


def test_custom_base_exception_is_error(domain: ImageDomain) -> None:
    code = "class Stop(BaseException):\n    pass\n\ndef draw():\n    raise Stop()\n"
    ev = domain.evaluate(code)
    assert ev.status is Status.ERROR
    assert ev.error == "Stop (line 5)"


def test_exception_with_broken_str_is_error(domain: ImageDomain) -> None:
    code = (
        "class Odd(Exception):\n"
        "    def __str__(self):\n"
        "        raise RuntimeError\n\n"
        "def draw():\n"
        "    raise Odd()\n"
    )
    ev = domain.evaluate(code)
    assert ev.status is Status.ERROR
    assert ev.error == "Odd: <unprintable message> (line 6)"


@pytest.mark.parametrize("call", ["exit()", "import sys; sys.exit(3)", "raise SystemExit"])
def test_exit_is_error(domain: ImageDomain, call: str) -> None:
    ev = domain.evaluate(program(call))
    assert ev.status is Status.ERROR
    assert ev.error.startswith("program called exit()")  # type: ignore[union-attr]


def test_long_error_messages_are_truncated(domain: ImageDomain) -> None:
    ev = domain.evaluate(program("raise ValueError('x' * 10000)"))
    assert ev.status is Status.ERROR
    assert len(ev.error) < 600  # type: ignore[arg-type]


def test_fresh_namespace_each_evaluation(domain: ImageDomain) -> None:
    domain.evaluate("LEAK = 1\n" + program("return np.zeros((16, 16, 3))"))
    ev = domain.evaluate(program("return np.full((16, 16, 3), LEAK / 2)"))
    assert ev.status is Status.ERROR
    assert "NameError" in ev.error  # type: ignore[operator]


def test_program_name_is_not_main(domain: ImageDomain) -> None:
    code = (
        "import numpy as np\n"
        "if __name__ == '__main__':\n"
        "    raise SystemExit\n"
        "def draw():\n"
        "    return np.zeros((16, 16, 3))\n"
    )
    assert domain.evaluate(code).ok


def test_reseeding_makes_random_programs_reproducible(domain: ImageDomain) -> None:
    code = (
        "import random\n"
        "import numpy as np\n\n"
        "def draw():\n"
        "    img = np.random.rand(16, 16, 3)\n"
        "    img[0, 0, 0] = random.random()\n"
        "    return img\n"
    )
    a, b, c = domain.evaluate(code, seed=3), domain.evaluate(code, seed=3), domain.evaluate(code, 4)
    assert a.ok and b.ok and c.ok
    assert a.fitness == b.fitness and a.descriptors == b.descriptors
    assert a.fitness != c.fitness


def test_large_seed_is_accepted(domain: ImageDomain) -> None:
    assert domain.evaluate(domain.seeds()[0], seed=2**40 + 5).ok


def test_targets_are_distinct_and_well_formed() -> None:
    names = ImageDomain.targets()
    assert {"circle", "square", "triangle", "cross", "ring"} <= set(names)
    images = {name: make_target(name, 32) for name in names}
    for img in images.values():
        assert img.shape == (32, 32, 3) and img.dtype == np.float64
        assert img.min() >= 0.0 and img.max() <= 1.0
        assert len(np.unique(img.reshape(-1, 3), axis=0)) == 2  # a shape on a background
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.allclose(images[a], images[b]), (a, b)


def test_target_shapes() -> None:
    circle = make_target("circle", 32)
    assert np.allclose(circle[16, 16], (0.9, 0.1, 0.1))  # red centre
    assert np.allclose(circle[0, 0], (0.1, 0.1, 0.3))  # dark blue corner
    ring = make_target("ring", 32)
    assert np.allclose(ring[16, 16], (0.5, 0.5, 0.5))  # hole in the middle
    assert np.allclose(ring[16, 5], (1.0, 0.55, 0.0))  # on the band
    triangle = make_target("triangle", 32)
    assert np.allclose(triangle[25, 16], (0.15, 0.3, 0.85))  # near the base, centre
    assert np.allclose(triangle[8, 8], (1.0, 0.95, 0.75))  # beside the apex


def test_target_depends_on_size() -> None:
    assert make_target("cross", 8).shape == (8, 8, 3)
    assert make_target("cross", 128).shape == (128, 128, 3)


def test_unknown_target_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown image target 'star'.*circle.*ring"):
        ImageDomain(target="star")


@pytest.mark.parametrize("size", [7, 129, 0, -32])
def test_size_out_of_range(size: int) -> None:
    with pytest.raises(ValueError, match="between 8 and 128"):
        ImageDomain(size=size)


@pytest.mark.parametrize("size", [32.0, "32", True])
def test_size_must_be_int(size: object) -> None:
    with pytest.raises(ValueError, match="must be an int"):
        ImageDomain(size=size)  # type: ignore[arg-type]


def test_unknown_metric() -> None:
    with pytest.raises(ValueError, match="l2, l1"):
        ImageDomain(metric="linf")


def test_context() -> None:
    d = ImageDomain(target="cross", size=24)
    ctx = d.context()
    assert ctx.function_name == "draw"
    assert ctx.file_name == "image.py"
    assert "(24, 24, 3)" in ctx.description
    assert "yellow plus sign" in ctx.description
    assert ctx.api.startswith("#")


def test_numpy_is_available_as_np_without_an_import():
    from evolm.domains.image import ImageDomain

    dom = ImageDomain(size=8)
    ev = dom.evaluate("def draw():\n    return np.zeros((8, 8, 3))\n")
    assert ev.ok, ev.error
    assert "imported as np" in dom.context().api
