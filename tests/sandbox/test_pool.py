"""SandboxPool behaviour: results, deadlines, memory, reseeding, dead or silent workers, leaks."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from evolm.sandbox import SandboxPool
from evolm.sandbox.pool import GRACE_S
from evolm.types import Status
from tests.sandbox.harness import (
    TIER_PARAMS,
    TOY,
    Sandbox,
    open_sandbox,
    wait_no_processes,
    zygote_pids,
)

LOOP = "def f():\n    while True:\n        pass\n"


@pytest.fixture(scope="module")
def toy() -> Iterator[Sandbox]:
    """Two toy-domain workers on the tier auto selects."""
    sb = open_sandbox("auto", TOY, workers=2, memory_mb=256, timeout=2.0)
    yield sb
    sb.close()


def test_ok_result_comes_back_with_timings(toy: Sandbox) -> None:
    ev = toy.run("def f():\n    return 3.0\n")
    assert ev.status is Status.OK and ev.fitness == 0.0 and ev.descriptors == (0.0, 0.3)
    assert 0 < ev.wall_time < 1 and 0 < ev.cpu_time < 1


def test_program_errors_are_values(toy: Sandbox) -> None:
    replaced = toy.pool.replaced
    ev = toy.run("def f():\n    raise KeyError('boom')\n")
    assert ev.status is Status.ERROR and "KeyError" in ev.error
    assert toy.pool.replaced == replaced


def test_numpy_arrays_come_back(toy: Sandbox) -> None:
    ev = toy.run(
        "import numpy as np\n"
        "def f():\n"
        "    return {'a': np.arange(6, dtype=np.float32).reshape(2, 3), 'b': np.bool_(True),\n"
        "            'c': np.int64(7), 'd': [np.zeros(2, dtype=np.uint8)]}\n"
    )
    assert ev.ok, ev.error
    a = ev.extras["a"]
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (2, 3)
    assert np.array_equal(a, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert ev.extras["b"] is True and ev.extras["c"] == 7
    assert ev.extras["d"][0].dtype == np.uint8


def test_unserialisable_extras_become_an_error(toy: Sandbox) -> None:
    for value in ("object()", "{1, 2}", "np.array(['a'], dtype=object)", "lambda: 1"):
        ev = toy.run(f"import numpy as np\ndef f():\n    return {{'x': {value}}}\n")
        assert ev.status is Status.ERROR and "not serialisable" in ev.error, value


def test_too_large_result_is_an_error(toy: Sandbox) -> None:
    ev = toy.run("def f():\n    return {'x': b'0' * (9 * 1024 * 1024)}\n")
    assert ev.status is Status.ERROR and "too large" in ev.error


def test_reseeding_per_request(toy: Sandbox) -> None:
    code = (
        "import random\nimport numpy as np\n"
        "def f():\n    return {'np': float(np.random.random()), 'py': random.random()}\n"
    )
    evs = toy.gather([code] * 4, seeds=[1, 1, 2, 3])
    draws = [(ev.extras["np"], ev.extras["py"]) for ev in evs]
    assert draws[0] == draws[1]
    assert len({draws[1], draws[2], draws[3]}) == 3
    np.random.seed(1)
    assert draws[0][0] == np.random.random()  # reseeded exactly like np.random.seed(seed)


def test_environment_is_clean_and_blas_single_threaded(toy: Sandbox) -> None:
    os.environ["OPENAI_API_KEY"] = "sk-test-not-for-workers"
    try:
        ev = toy.run(
            "import os\ndef f():\n"
            "    try:\n        listing = os.listdir('.')\n"
            "    except OSError as exc:\n        listing = type(exc).__name__\n"
            "    return {'env': dict(os.environ), 'cwd': listing}\n"
        )
    finally:
        del os.environ["OPENAI_API_KEY"]
    env = ev.extras["env"]
    assert "OPENAI_API_KEY" not in env
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1"
    assert set(env) <= {
        "PATH", "LANG", "HOME", "TMPDIR", "PWD", "EVOLM_SANDBOX", "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS",
    }  # fmt: skip
    assert ev.extras["cwd"] in ([], "PermissionError")


def test_threads_are_allowed(toy: Sandbox) -> None:
    ev = toy.run(
        "import threading\ndef f():\n    out = []\n"
        "    ts = [threading.Thread(target=out.append, args=(i,)) for i in range(4)]\n"
        "    [t.start() for t in ts]\n    [t.join() for t in ts]\n    return float(len(out))\n"
    )
    assert ev.ok and ev.descriptors == (0.0, 0.4)


@pytest.mark.parametrize("tier", TIER_PARAMS)
def test_timeout_kills_the_program_on_time(tier: str) -> None:
    sb = open_sandbox(tier, TOY, timeout=1.0)
    try:
        replaced = sb.pool.replaced
        t0 = time.perf_counter()
        ev = sb.run(LOOP)
        elapsed = time.perf_counter() - t0
        assert ev.status is Status.TIMEOUT and "1 s deadline" in ev.error
        assert 1.0 <= ev.wall_time < 2.0, ev.wall_time  # killed by the zygote, not the pool
        assert elapsed < 1.0 + GRACE_S
        assert sb.processes() == sb.baseline  # the program's process is gone
        assert sb.pool.replaced == replaced  # the zygote survives and serves the next one
        assert sb.run("def f():\n    return 3\n").ok
    finally:
        sb.close()


def test_sleeping_program_times_out(toy: Sandbox) -> None:
    ev = toy.run("import time\ndef f():\n    time.sleep(60)\n", timeout=0.5)
    assert ev.status is Status.TIMEOUT and 0.5 <= ev.wall_time < 1.5
    assert toy.processes() == toy.baseline


def test_memory_limit_is_an_error_and_the_worker_survives(toy: Sandbox) -> None:
    replaced = toy.pool.replaced
    ev = toy.run("def f():\n    x = bytearray(4 * 1024**3)\n    return 1\n")
    assert ev.status is Status.ERROR and ev.error == "memory limit exceeded"
    assert toy.pool.replaced == replaced
    assert toy.run("def f():\n    return 2\n").ok


def test_memory_limit_per_request(toy: Sandbox) -> None:
    code = "def f():\n    x = bytearray(160 * 1024**2)\n    return 1\n"
    assert toy.run(code).ok  # within the pool's 256 MiB
    ev = toy.run(code, memory_mb=64)
    assert ev.status is Status.ERROR and "memory" in ev.error


def test_program_exiting_or_crashing_is_an_error(toy: Sandbox) -> None:
    replaced = toy.pool.replaced
    ev = toy.run("import os\ndef f():\n    os._exit(3)\n")
    assert ev.status is Status.ERROR and "exited with code 3" in ev.error
    ev = toy.run("import ctypes\ndef f():\n    return ctypes.string_at(0)\n")
    assert ev.status is Status.ERROR and "SIGSEGV" in ev.error
    assert toy.pool.replaced == replaced


def test_worker_killed_while_idle_is_replaced_before_the_next_program() -> None:
    sb = open_sandbox("auto", TOY)
    try:
        (zygote,) = zygote_pids(sb.pool.sandbox_id)
        os.kill(zygote, signal.SIGKILL)
        time.sleep(0.3)
        ev = sb.run("def f():\n    return 3\n")
        assert ev.ok and sb.pool.replaced == 1
        assert zygote_pids(sb.pool.sandbox_id) not in (set(), {zygote})
    finally:
        sb.close()


@pytest.mark.parametrize("tier", TIER_PARAMS)
def test_worker_killed_mid_program_is_an_error_and_replaced(tier: str) -> None:
    """The program (which tries to clear its parent-death signal) dies with its zygote."""
    sb = open_sandbox(tier, TOY, timeout=5.0)
    code = (
        "import ctypes, time\ndef f():\n"
        "    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG: none\n"
        "    time.sleep(5)\n"
    )

    async def go() -> object:
        task = asyncio.ensure_future(sb.pool.evaluate(code))
        await asyncio.sleep(0.5)
        (zygote,) = zygote_pids(sb.pool.sandbox_id)
        os.kill(zygote, signal.SIGKILL)
        return await task

    try:
        t0 = time.perf_counter()
        ev = sb.loop.run_until_complete(go())
        assert ev.status is Status.ERROR and "died" in ev.error and "replaced" in ev.error
        assert time.perf_counter() - t0 < 3
        assert sb.run("def f():\n    return 3\n").ok and sb.pool.replaced == 1
        assert len(sb.processes()) == len(sb.baseline)  # the new zygote, and no orphan
    finally:
        sb.close()


def test_silent_worker_is_killed_and_replaced() -> None:
    sb = open_sandbox("auto", TOY, timeout=0.5)

    async def go() -> object:
        task = asyncio.ensure_future(
            sb.pool.evaluate("import time\ndef f():\n    time.sleep(0.3)\n")
        )
        await asyncio.sleep(0.1)
        (zygote,) = zygote_pids(sb.pool.sandbox_id)
        os.kill(zygote, signal.SIGSTOP)
        return await task

    try:
        t0 = time.perf_counter()
        ev = sb.loop.run_until_complete(go())
        assert ev.status is Status.TIMEOUT and "stopped answering" in ev.error
        assert time.perf_counter() - t0 < 0.5 + GRACE_S + 1
        assert sb.run("def f():\n    return 3\n").ok and sb.pool.replaced == 1
    finally:
        sb.close()
    assert not wait_no_processes(sb.pool.sandbox_id)


def test_cancelled_evaluation_replaces_its_worker(toy: Sandbox) -> None:
    replaced = toy.pool.replaced

    async def go() -> None:
        await asyncio.wait_for(toy.pool.evaluate("import time\ndef f():\n    time.sleep(5)\n"), 0.3)

    with pytest.raises(TimeoutError):
        toy.loop.run_until_complete(go())
    assert toy.pool.replaced == replaced + 1
    assert toy.run("def f():\n    return 3\n").ok


def test_many_programs_in_a_row_leak_no_processes_or_fds(toy: Sandbox) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    toy.gather(["def f():\n    return 1\n"] * 20)
    before, procs = fds(), toy.processes()
    evs = toy.gather([f"def f():\n    return {i}\n" for i in range(300)])
    assert all(ev.ok for ev in evs)
    assert fds() <= before + 2
    assert toy.processes() == procs


def test_closing_the_pool_ends_every_process() -> None:
    sb = open_sandbox("auto", TOY, workers=2)
    assert sb.run("def f():\n    return 1\n").ok
    assert sb.processes()
    root = sb.pool._root
    sb.close()
    assert not wait_no_processes(sb.pool.sandbox_id)
    assert root is not None and not Path(root).exists()


def test_domain_that_cannot_be_built_is_a_value_error() -> None:
    async def go() -> None:
        async with SandboxPool("tests.no_such_module:Nope", workers=1):
            pass

    with pytest.raises(ValueError, match="no_such_module"):
        asyncio.run(go())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="timeout"):
        SandboxPool(TOY, timeout=0)
    with pytest.raises(ValueError, match="tier"):
        SandboxPool(TOY, tier="gvisor")
    with pytest.raises(ValueError, match="params"):
        SandboxPool(TOY, {"x": object()})
    with pytest.raises(RuntimeError, match="before start"):
        asyncio.run(SandboxPool(TOY).evaluate("x"))


def test_evaluate_after_close_is_a_clear_error(toy: Sandbox) -> None:
    pool = SandboxPool(TOY, workers=1, tier=toy.pool.tier or "auto")

    async def go() -> None:
        async with pool:
            pass
        await pool.evaluate("def f():\n    return 1\n")

    with pytest.raises(RuntimeError, match="after close"):
        asyncio.run(go())
