"""The evaluation worker pool: results, deadlines, memory limits, dead workers, no leaks."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from evolm.types import Evaluation, Status
from evolm.workers import EvalPool, decode_evaluation, encode_evaluation

TOY = "tests.toy_domain:ToyDomain"


def run(coro):
    return asyncio.run(coro)


async def _pool_eval(codes, timeout=2.0, workers=2, memory_mb=512, seeds=None):
    async with EvalPool(TOY, {}, workers=workers, timeout=timeout, memory_mb=memory_mb) as pool:
        seeds = seeds or [0] * len(codes)
        evs = await asyncio.gather(
            *(pool.evaluate(c, s) for c, s in zip(codes, seeds, strict=True))
        )
        return evs, pool.replaced


def test_ok_result_comes_back_with_timings():
    (ev,), _ = run(_pool_eval(["def f():\n    return 3.0\n"]))
    assert ev.status is Status.OK and ev.fitness == 0.0 and ev.descriptors == (0.0, 0.3)
    assert ev.wall_time >= 0 and ev.cpu_time >= 0


def test_program_errors_are_values():
    (ev,), replaced = run(_pool_eval(["def f():\n    raise KeyError('boom')\n"]))
    assert ev.status is Status.ERROR and "KeyError" in ev.error
    assert replaced == 0


def test_runs_in_another_process():
    (ev,), _ = run(_pool_eval(["import os\ndef f():\n    return {'pid': os.getpid()}\n"]))
    assert ev.extras["pid"] != os.getpid()


def test_hung_program_times_out_and_worker_is_replaced():
    t0 = time.perf_counter()
    evs, replaced = run(
        _pool_eval(
            ["def f():\n    while True:\n        pass\n", "def f():\n    return 3\n"],
            timeout=0.5,
            workers=1,
        )
    )
    assert evs[0].status is Status.TIMEOUT and "deadline" in evs[0].error
    assert evs[1].status is Status.OK  # the replacement worker serves the next program
    assert replaced == 1
    assert time.perf_counter() - t0 < 10


def test_memory_bomb_is_an_error_not_a_dead_engine():
    code = "def f():\n    x = bytearray(4 * 1024**3)\n    return 1\n"
    (ev,), _ = run(_pool_eval([code], memory_mb=256))
    assert ev.status is Status.ERROR and "memory" in ev.error.lower()


def test_worker_that_dies_is_replaced():
    evs, replaced = run(
        _pool_eval(
            ["import os\ndef f():\n    os._exit(3)\n", "def f():\n    return 2\n"], workers=1
        )
    )
    assert evs[0].status is Status.ERROR and "died" in evs[0].error
    assert evs[1].status is Status.OK and replaced == 1


def test_unserialisable_extras_become_an_error():
    (ev,), _ = run(_pool_eval(["def f():\n    return {'obj': object()}\n"]))
    assert ev.status is Status.ERROR and "serialisable" in ev.error


def test_many_programs_in_a_row_leak_no_processes_or_fds():
    def fds():
        return len(os.listdir("/proc/self/fd"))

    async def go():
        async with EvalPool(TOY, {}, workers=2, timeout=2) as pool:
            await asyncio.gather(*(pool.evaluate("def f():\n    return 1\n") for _ in range(20)))
            before = fds()
            await asyncio.gather(
                *(pool.evaluate(f"def f():\n    return {i}\n") for i in range(300))
            )
            return before, fds(), [p.proc.pid for p in pool._all]

    before, after, pids = run(go())
    assert after <= before + 2
    time.sleep(0.2)
    for pid in pids:  # closing the pool ends its workers
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split()[2] == "Z"


def test_reseeding_per_request():
    code = "import numpy as np\ndef f():\n    return float(np.random.random())\n"
    evs, _ = run(_pool_eval([code] * 3, seeds=[1, 1, 2], workers=1))
    assert evs[0].fitness == evs[1].fitness != evs[2].fitness


def test_malformed_frames_decode_to_errors():
    assert decode_evaluation(b"\xc1\xc1").status is Status.ERROR
    ok = Evaluation(Status.OK, 1.0, (0.5,), {"a": 1})
    assert decode_evaluation(encode_evaluation(ok)) == ok


def test_bad_pool_arguments():
    with pytest.raises(ValueError, match="timeout"):
        EvalPool(TOY, timeout=0)
