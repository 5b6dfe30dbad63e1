"""RayEvaluator on a real Ray cluster on this machine: a head and a second node started with
``ray start`` on loopback (each its own raylet). Runs through the cluster are compared with the
same runs on the local sandbox pool; then a node's raylet is killed, and an actor is frozen,
in the middle of a run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evolm.config import load_config
from evolm.evaluators import EvalJob, Evaluator
from evolm.evaluators.local import SandboxEvaluator
from evolm.runner import Runner
from evolm.store import RunStore
from evolm.types import Program, Status

pytest.importorskip("ray")

from evolm.evaluators.ray_cluster import RayEvaluator, RayUnavailable
from tests.evaluators.local_cluster import LocalCluster

pytestmark = pytest.mark.slow

TOY = "tests.toy_domain:ToyDomain"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster()
    try:
        c.start_head()
        c.add_node()
        yield c
    finally:
        c.stop()


def _config(latency: float = 0.0) -> Any:
    """The toy run; ``latency`` (seconds per fake LLM call) stretches it without changing it."""
    return load_config(
        overrides={
            "seed": 5,
            "llm": {"backend": "fake", "latency": latency},
            "domain": {"name": TOY},
            "archive": {"kind": "grid", "bins": [5, 5]},
            "engine": {"batch_size": 4, "pipeline_depth": 2},
            "budget": {"evaluations": 40},
        }
    )


def _run(
    path: Path,
    evaluator: Evaluator,
    on_step: Callable[[Any], None] | None = None,
    latency: float = 0.0,
) -> tuple[str, list[tuple[Any, ...]]]:
    """Run the toy domain with the fake LLM on ``evaluator``; its status and its programs
    (code, lineage, status, scores, archive outcome), in id order."""
    store = RunStore(path)

    async def go() -> Any:
        try:  # the runner starts the evaluator; whoever builds one closes it
            return await Runner(_config(latency), store, evaluator=evaluator, on_step=on_step).run()
        finally:
            evaluator.close()

    result = asyncio.run(go())
    rows = [
        (
            r["id"],
            r["code"],
            tuple(r["parent_ids"]),
            r["status"],
            r["fitness"],
            None if r["descriptors"] is None else tuple(r["descriptors"]),
            r["add_status"],
            r["error"],
        )
        for r in store.export_rows()
    ]
    store.close()
    return result.status, rows


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, ...]]:
    path = tmp_path_factory.mktemp("local") / "local.db"
    status, rows = _run(path, SandboxEvaluator(TOY, workers=2, timeout=2.0))
    assert status == "completed"
    return rows


def _ray(cluster: LocalCluster, **kwargs: Any) -> RayEvaluator:
    return RayEvaluator(TOY, address=cluster.address, timeout=2.0, **kwargs)


def test_a_run_on_two_nodes_equals_the_same_run_on_the_local_pool(cluster, local_rows, tmp_path):
    ev = _ray(cluster)
    status, rows = _run(tmp_path / "ray.db", ev)
    assert status == "completed"
    assert rows == local_rows
    assert len([r for r in rows if r[3] is not None]) >= 40
    assert ev.dispatcher is not None and len(ev.dispatcher.done) == 2  # both nodes evaluated
    assert ev.info["workers"] == 2 and len(ev.info["nodes"]) == 2
    assert ev.info["tier"] in ("bwrap", "userns", "landlock", "weak")
    (event,) = RunStore(tmp_path / "ray.db", readonly=True).sandbox_events()
    assert event.evaluator == "ray" and len(event.info["nodes"]) == 2


def test_programs_run_in_each_nodes_jail_not_in_the_actor(cluster):
    async def go() -> list[Any]:
        ev = _ray(cluster)
        await ev.start()
        try:
            pids = {s.pid for s in ev.slots}
            code = f"import os\ndef f():\n    return len(os.listdir({str(Path.home())!r}))\n"
            jobs = [EvalJob(Program(id=i, code=code), i, 2.0) for i in range(4)]
            jobs.append(EvalJob(Program(id=9, code="def f():\n    while True: pass\n"), 0, 1.0))
            return [pids, await ev.evaluate(jobs)]
        finally:
            ev.close()

    pids, evs = asyncio.run(go())
    for e in evs[:4]:  # the home directory is hidden by the jail on every node
        assert e.status is Status.ERROR and "PermissionError" in (e.error or "")
    assert evs[4].status is Status.TIMEOUT  # the node's pool enforces the deadline
    assert len(pids) == 2 and os.getpid() not in pids


SHIPPED_DOMAIN = """
from evolm.domains.base import Domain, DomainContext
from evolm.types import DescriptorSpace, Evaluation, Status


class ShippedDomain(Domain):
    name = "shipped"

    @property
    def descriptor_space(self):
        return DescriptorSpace(("x",), ((0.0, 10.0),))

    def seeds(self):
        return ["def f():\\n    return 1.0\\n"]

    def context(self):
        return DomainContext(description="a number", function_name="f")

    def evaluate(self, code, seed=0):
        ns = {}
        exec(code, ns)
        return Evaluation(Status.OK, 7.0 + float(ns["f"]()), (1.0,))
"""


def test_a_domain_module_of_the_users_own_is_shipped_to_the_nodes(cluster, tmp_path, monkeypatch):
    # a module only this process can import: the nodes' PYTHONPATH does not hold tmp_path
    (tmp_path / "evolm_shipped_dom.py").write_text(SHIPPED_DOMAIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    ev = RayEvaluator("evolm_shipped_dom:ShippedDomain", address=cluster.address, timeout=2.0)
    assert ev.shipped == str((tmp_path / "evolm_shipped_dom.py").resolve())

    async def go() -> list[Any]:
        await ev.start()
        try:
            code = "def f():\n    return 2.0\n"
            return await ev.evaluate([EvalJob(Program(id=i, code=code), i, 2.0) for i in range(4)])
        finally:
            ev.close()

    evs = asyncio.run(go())
    assert [e.fitness for e in evs] == [9.0] * 4
    assert len(ev.info["nodes"]) == 2 and ev.info["shipped"] == ev.shipped


def test_evolm_and_installed_modules_are_not_shipped():
    from evolm.evaluators.ray_cluster import shipped_module

    assert shipped_module("evolm.domains.sodarace:SodaraceDomain") is None
    assert shipped_module("json:JSONDecoder") is None  # the standard library
    assert shipped_module(TOY) == str(ROOT / "tests")  # a top-level package of the user's


def test_a_frozen_actor_is_killed_and_replaced_and_the_run_is_unchanged(
    cluster, local_rows, tmp_path
):
    ev = _ray(cluster, hang_grace=2.0)
    frozen: list[int] = []

    def freeze(snap: Any) -> None:
        if not frozen and ev.slots:
            victim = ev.slots[-1]
            os.kill(victim.pid, signal.SIGSTOP)  # alive, but silent: a hung node
            frozen.append(victim.pid)

    try:
        status, rows = _run(tmp_path / "hang.db", ev, on_step=freeze)
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert status == "completed" and frozen
    assert rows == local_rows
    assert ev.dispatcher is not None
    assert any(f"pid {frozen[0]}" in line and "hung" in line for line in ev.dispatcher.lost)


def test_a_hung_actor_is_replaced_on_its_node_and_the_replacement_takes_jobs(cluster):
    code = "def f():\n    return 2.5\n"

    async def go() -> tuple[int, list[Any], RayEvaluator]:
        ev = _ray(cluster, hang_grace=1.0)
        await ev.start()
        try:
            victim = ev.slots[-1]
            os.kill(victim.pid, signal.SIGSTOP)
            try:
                first = await ev.evaluate(
                    [EvalJob(Program(id=i, code=code), i, 2.0) for i in range(4)]
                )
                for _ in range(600):  # the replacement starts in the background
                    if any(s.node == victim.node and s.pid != victim.pid for s in ev.slots):
                        break
                    await asyncio.sleep(0.1)
                second = await ev.evaluate(
                    [EvalJob(Program(id=i, code=code), i, 2.0) for i in range(4, 8)]
                )
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim.pid, signal.SIGKILL)
            return victim.pid, [*first, *second], ev
        finally:
            ev.close()

    pid, evs, ev = asyncio.run(go())
    assert all(e.ok and e.fitness == -0.25 for e in evs)  # f() == 2.5: (2.5 - 3) ** 2
    assert ev.dispatcher is not None
    (lost,) = ev.dispatcher.lost
    assert f"pid {pid}" in lost and "hung, killed" in lost
    replacement = [n for n in ev.dispatcher.done if f"pid {pid}" not in n]
    assert len(replacement) == 2  # the other node's actor, and the new one on the hung node


def test_killing_a_nodes_raylet_mid_run_loses_nothing(cluster, local_rows, tmp_path):
    third = cluster.add_node()
    ev = _ray(cluster, hang_grace=5.0)
    killed: list[int] = []

    def kill(snap: Any) -> None:
        if snap.batch >= 2 and not killed:
            pid = cluster.raylet_pid(third)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    # LLM calls of 0.3 s keep the run going for seconds after the kill
    status, rows = _run(tmp_path / "kill.db", ev, on_step=kill, latency=0.3)
    assert status == "completed" and killed
    assert rows == local_rows  # every candidate evaluated once, the same archive
    assert ev.dispatcher is not None
    # one node's pool was lost (the third's: the others are alive), after it had taken jobs
    lost = {line.split(":")[0] for line in ev.dispatcher.lost}
    assert len(lost) == 1 and ev.dispatcher.done[lost.pop()] > 0
    assert ev.info["workers"] == 3


def test_a_run_whose_whole_cluster_dies_fails_saying_so_and_does_not_hang(tmp_path):
    own = LocalCluster()  # its own cluster: this test kills it
    try:
        own.start_head()
        ev = _ray(own, hang_grace=2.0)
        gone: list[bool] = []

        def kill_all(snap: Any) -> None:
            if snap.batch >= 1 and not gone:
                own.kill()
                gone.append(True)

        store = RunStore(tmp_path / "gone.db")

        async def go() -> Any:
            try:
                return await Runner(_config(0.3), store, evaluator=ev, on_step=kill_all).run()
            finally:
                ev.close()

        result = asyncio.run(go())
        assert gone and result.status == "failed"
        assert "ClusterGone: the cluster is gone" in (result.error or "")
        assert "evolm resume" in (result.error or "")
        assert store.run_info()["status"] == "failed"  # stored: resumable once it is back
        store.close()
    finally:
        own.stop()


def test_an_unreachable_cluster_is_refused_at_start_with_the_fix():
    async def go() -> None:
        ev = RayEvaluator(TOY, address="127.0.0.1:1")
        await ev.start()

    with pytest.raises(RayUnavailable, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1"):
        asyncio.run(go())


def test_without_ray_the_error_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RayUnavailable, match=r'pip install "evolm\[ray\]"'):
        asyncio.run(RayEvaluator(TOY).start())


def evolm(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from evolm.cli import app; app()", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_evolm_run_and_resume_on_the_cluster_from_the_command_line(cluster, tmp_path):
    db = tmp_path / "cli.db"
    run = evolm(
        "run", TOY, "--llm", "fake", "--budget-evals", "12", "--seed", "2",
        "--evaluate-on", f"ray:{cluster.address}", "--out", db, "-q",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    status = evolm("status", db)
    assert "ray, " in status.stdout and "2 workers" in status.stdout, status.stdout
    more = evolm(
        "resume", db, "--budget-evals", "20", "--evaluate-on", f"ray:{cluster.address}", "-q"
    )
    assert more.returncode == 0, more.stdout + more.stderr
    with RunStore(db, readonly=True) as store:
        assert store.run_info()["config"]["engine"]["evaluator"] == f"ray:{cluster.address}"
        assert [e.evaluator for e in store.sandbox_events()] == ["ray", "ray"]


def test_evolm_run_on_an_unreachable_cluster_fails_before_storing_anything(tmp_path):
    db = tmp_path / "none.db"
    p = evolm("run", TOY, "--budget-evals", "5", "--evaluate-on", "ray:127.0.0.1:1", "--out", db)
    assert p.returncode == 2
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in p.stderr
    assert "ray start --head" in p.stderr and "evolm doctor" not in p.stderr
    assert not db.exists()
