"""Evaluation on a Ray cluster: one long-lived actor per node, each owning a local sandbox pool.

Why this shape: the jail (:class:`~evolm.sandbox.SandboxPool`) is what makes running untrusted
programs safe, so a node does exactly what the local engine does: its actor starts a pool of
jailed zygotes and hands each program to one. The actor's own Python process only relays code
in and plain evaluations out; no candidate runs in it. Jobs are spread by
:class:`~evolm.evaluators.dispatch.Dispatcher` (free capacity first; lost or hung actors killed,
replaced and their jobs resubmitted).

What is shipped to the nodes: the domain as ``package.module:Class`` and its *worker
parameters* (:meth:`Domain.worker_params`, e.g. a task domain's file texts, a puzzle file's
chosen puzzle), so nodes never read the user's files; and, when the domain's module is the
user's own (not evolm, not installed), that module's file or top-level package
(:func:`shipped_module`). evolm itself must be installed on every node (the same version:
checked at start). Ray is an optional
dependency (``pip install "evolm[ray]"``), imported when a :class:`RayEvaluator` starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket
import sys
import sysconfig
import threading
from collections.abc import Sequence
from typing import Any

from evolm.evaluators.base import EvalJob, Evaluator
from evolm.evaluators.dispatch import ClusterGone, Dispatcher, Slot, SlotLost
from evolm.sandbox.pool import GRACE_S, worker_domain_spec
from evolm.sandbox.startup import start_timeout as _start_timeout
from evolm.sandbox.tiers import SandboxUnavailable
from evolm.types import Evaluation

__all__ = ["ClusterGone", "NodePool", "RayEvaluator", "RayUnavailable", "import_ray"]

INSTALL = 'pip install "evolm[ray]"'
NODES_TIMEOUT_S = 15.0
"""How long the cluster's head may take to list its nodes before it counts as gone."""


def _settle(fut: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if not fut.done():
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


class RayUnavailable(SandboxUnavailable):
    """The cluster cannot evaluate: Ray is missing, unreachable, or no node started a pool.
    (A :class:`SandboxUnavailable`, so a run stops before it stores anything.)"""


def import_ray() -> Any:
    """The ``ray`` module, or :class:`RayUnavailable` naming the install command."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(
            f"evaluating on a Ray cluster needs Ray, which is not installed: {INSTALL} "
            "(on the machine that runs evolm and on every node of the cluster)"
        ) from exc
    return ray


def _reachable(address: str, timeout: float = 10.0) -> None:
    """Raise :class:`RayUnavailable` unless ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts a
    connection: ``ray.init`` itself waits minutes for a head that is not there."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayUnavailable(
            f"cannot reach the Ray cluster at {address}: {exc}. Is its head running? Start it "
            "with `ray start --head --port=6379` and give that HOST:PORT (`ray status` on the "
            "head prints it)"
        ) from None


def shipped_module(spec: str) -> str | None:
    """The file or package directory of the domain's top-level module when it is the user's
    own (not evolm, not installed in this Python): Ray ships it to every node with the actor
    (``runtime_env`` ``py_modules``), so nodes need only evolm installed."""
    top = spec.partition(":")[0].split(".")[0]
    if top == "evolm":
        return None
    module = importlib.import_module(top)
    file = getattr(module, "__file__", None)
    if file is None:  # a namespace package: nothing single to ship
        return None
    root = os.path.dirname(file) if os.path.basename(file) == "__init__.py" else file
    root = os.path.realpath(root)
    paths = sysconfig.get_paths()
    installed = {paths["purelib"], paths["platlib"], paths["stdlib"], sys.prefix, sys.base_prefix}
    if any(root.startswith(os.path.realpath(p) + os.sep) for p in installed):
        return None
    return root


class NodePool:
    """The actor on one node (Ray creates it there): a :class:`SandboxPool` of the domain.

    Programs run in the pool's jailed zygotes, never in this process. When the node holds the
    driver's working directory (the same machine, or a shared filesystem), the actor works from
    it, so the jail hides it exactly as the local pool does (only the domain's own package stays
    visible).
    """

    def __init__(self, spec: str, params: dict[str, Any], pool: dict[str, Any], cwd: str) -> None:
        from evolm.sandbox import SandboxPool

        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.pool = SandboxPool(spec, params, **pool)

    async def start(self) -> dict[str, Any]:
        """Start the pool; what it reports, with this node's evolm version and process id."""
        import evolm

        await self.pool.start()
        return {**self.pool.info, "version": evolm.__version__, "pid": os.getpid()}

    async def evaluate(self, code: str, seed: int, timeout: float) -> Evaluation:
        return await self.pool.evaluate(code, seed, timeout)

    def close(self) -> None:
        self.pool.close()


class _ActorSlot:
    """A :class:`~evolm.evaluators.dispatch.Slot` backed by a started :class:`NodePool` actor."""

    def __init__(self, ray: Any, actor: Any, node: str, info: dict[str, Any]) -> None:
        self._ray = ray
        self.actor = actor
        self.node = node
        self.info = info
        self.capacity = int(info["workers"])
        self.pid = int(info["pid"])
        self.name = f"node {node[:8]} (pid {self.pid})"

    async def evaluate(self, job: EvalJob) -> Evaluation:
        ref = self.actor.evaluate.remote(job.program.code, job.seed, job.timeout)
        try:
            ev: Evaluation = await ref
        except self._ray.exceptions.RayError as exc:
            raise SlotLost(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from exc
        return ev

    def kill(self) -> None:
        _kill(self._ray, self.actor)


def _kill(ray: Any, actor: Any) -> None:
    """Kill ``actor`` if Ray is still up (after ``ray.shutdown`` a Ray call would start a new
    local instance instead)."""
    if ray.is_initialized():
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)


class RayEvaluator(Evaluator):
    """Evaluate on every node of a Ray cluster, each node in its own local sandbox pool.

    Args:
        domain: registered domain name or ``package.module:Class``.
        params: the domain's parameters (its worker parameters are what nodes receive).
        address: the cluster (``ray.init(address=...)``: ``HOST:PORT``, ``auto``, ``ray://...``);
            None follows Ray's own rule (``RAY_ADDRESS``, else a cluster started on this machine
            with ``ray start``, else a new local one).
        workers: zygotes per node (0: the node's CPU count in Ray).
        timeout, memory_mb, tier, allow_weak: as for :class:`~evolm.sandbox.SandboxPool`, on
            every node.
        hang_grace: seconds past a program's timeout (and the pool's own grace) before its
            node's actor counts as hung and is killed and replaced.
        start_timeout: seconds an actor may take to start its pool (None: the sandbox's
            default, ``$EVOLM_SANDBOX_START_TIMEOUT`` or 60 s) plus Ray's time to place it.
        max_tries: nodes a job may be lost on before it comes back as an ``error``.

    When evolm started Ray (``ray.init`` here), :meth:`close` shuts it down; a Ray session the
    caller opened is left open.
    """

    name = "ray"

    def __init__(
        self,
        domain: str,
        params: dict[str, Any] | None = None,
        *,
        address: str | None = None,
        workers: int = 0,
        timeout: float = 5.0,
        memory_mb: int | None = 1024,
        tier: str = "auto",
        allow_weak: bool = False,
        hang_grace: float = 30.0,
        start_timeout: float | None = None,
        max_tries: int = 3,
    ) -> None:
        super().__init__()
        if workers < 0:
            raise ValueError(f"workers must be >= 0 (0: the node's CPUs), got {workers}")
        if not hang_grace > 0:
            raise ValueError(f"hang_grace must be a number of seconds > 0, got {hang_grace}")
        from evolm.domains.base import get_domain

        self.spec = worker_domain_spec(domain, params)
        self.shipped = shipped_module(self.spec)
        """The user's domain module (file or package), shipped to the nodes when evolm starts
        Ray (a Ray session the caller opened ships what its ``runtime_env`` says); None if
        none."""
        self.params = dict(get_domain(domain, params).worker_params(dict(params or {})))
        self.address = address
        self.workers = workers
        self.pool_args: dict[str, Any] = {
            "timeout": timeout,
            "memory_mb": memory_mb,
            "tier": tier,
            "allow_weak": allow_weak,
        }
        self.start_timeout = _start_timeout(start_timeout)
        self.hang_grace = hang_grace
        self.max_tries = max_tries
        self.dispatcher: Dispatcher | None = None
        self._ray: Any = None
        self._actor_cls: Any = None
        self._owns_ray = False

    # -- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the cluster and start one pool per node.

        Raises:
            RayUnavailable: Ray is missing or the cluster unreachable, a node runs another evolm
                version, or no node could start its pool (each node's reason is given).
        """
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            if self.address is not None:
                await asyncio.to_thread(_reachable, self.address)
            # Ray ends a driver whose head has been unreachable for 60 s (os._exit, nothing
            # stored); evolm notices a lost head itself (NODES_TIMEOUT_S) and fails the run
            os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(7 * 24 * 3600))
            try:
                ray.init(
                    address=self.address,
                    logging_level="ERROR",
                    log_to_driver=False,
                    include_dashboard=False if self.address is None else None,
                    # Ray uploads it once for the job; every actor of the job imports it
                    runtime_env={"py_modules": [self.shipped]} if self.shipped else None,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "the default cluster"
                raise RayUnavailable(
                    f"cannot connect to the Ray cluster at {where}: {exc}. Start it with "
                    "`ray start --head` (and `ray start --address=HEAD:PORT` on each other "
                    "node), or give its address as --evaluate-on ray:HOST:PORT"
                ) from exc
            self._owns_ray = True
        elif self.shipped:  # the caller's Ray session: its runtime_env is already fixed
            self.shipped = None
        self._actor_cls = ray.remote(max_restarts=0, num_cpus=0)(NodePool)
        nodes = await self._live_nodes()
        if nodes is None:
            raise RayUnavailable(
                f"the Ray cluster's head did not list its nodes within {NODES_TIMEOUT_S:g} s"
            )
        if not nodes:
            raise RayUnavailable("the Ray cluster has no live node with CPUs")
        started = await asyncio.gather(*(self._start_slot(n, cpus) for n, cpus in nodes.items()))
        slots = [s for s in started if isinstance(s, _ActorSlot)]
        failed = [
            f"node {n[:8]}: {why}"
            for n, why in zip(nodes, started, strict=True)
            if isinstance(why, str)
        ]
        if not slots:
            raise RayUnavailable(
                "no node of the Ray cluster could start its sandbox pool: " + "; ".join(failed)
            )
        versions = {s.info["version"] for s in slots}
        import evolm

        if versions != {evolm.__version__}:
            for s in slots:
                s.kill()
            raise RayUnavailable(
                f"the cluster's nodes run evolm {', '.join(sorted(versions))}, this machine "
                f"{evolm.__version__}; install the same version on every node"
            )
        self.dispatcher = Dispatcher(
            slots, self._replace, grace=GRACE_S + self.hang_grace, max_tries=self.max_tries
        )
        tiers = sorted({str(s.info["tier"]) for s in slots})
        self.info = {
            "address": self.address or "default",
            "tier": tiers[0] if len(tiers) == 1 else "mixed: " + ", ".join(tiers),
            "reason": f"each node chose its own: {slots[0].info['reason']}",
            "workers": self.dispatcher.capacity,
            "scoring": slots[0].info["scoring"],
            "nodes": [
                {"node": s.node, "tier": s.info["tier"], "workers": s.capacity} for s in slots
            ],
            "failed_nodes": failed,
            "shipped": self.shipped,
        }

    async def _live_nodes(self) -> dict[str, int] | None:
        """Live nodes with CPUs in Ray, and the pool size each gets; None when the head does
        not answer within :data:`NODES_TIMEOUT_S` (``ray.nodes()`` blocks while it is gone, so
        it runs in a daemon thread that may be left behind)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[dict[str, Any]]] = loop.create_future()

        def ask() -> None:
            try:
                nodes = self._ray.nodes()
            except Exception as exc:
                loop.call_soon_threadsafe(_settle, done, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, done, nodes, None)

        threading.Thread(target=ask, daemon=True, name="evolm-ray-nodes").start()
        try:
            async with asyncio.timeout(NODES_TIMEOUT_S):
                listed = await done
        except Exception:  # TimeoutError included
            return None
        out = {}
        for n in listed:
            cpus = int(n.get("Resources", {}).get("CPU", 0))
            if n.get("Alive") and cpus > 0:
                out[n["NodeID"]] = self.workers or cpus
        return out

    async def _start_slot(self, node: str, workers: int) -> _ActorSlot | str:
        """A started pool on ``node``, or why it could not start."""
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor = self._actor_cls.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
        ).remote(self.spec, self.params, {**self.pool_args, "workers": workers}, os.getcwd())
        try:
            # Ray places the actor and starts its process; the pool then starts its zygotes,
            # each stage with the sandbox's own start timeout
            async with asyncio.timeout(2 * self.start_timeout + 30):
                info = await actor.start.remote()
        except TimeoutError:
            why = f"no pool within {2 * self.start_timeout + 30:g} s"
        except ray.exceptions.RayTaskError as exc:  # raised by the pool: its message says why
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            why = f"{type(cause).__name__}: {cause}"
        except ray.exceptions.RayError as exc:
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        except asyncio.CancelledError:
            _kill(ray, actor)
            raise
        else:
            return _ActorSlot(ray, actor, node, info)
        _kill(ray, actor)
        return why

    async def _replace(self, old: Slot) -> Slot | None:
        """A new pool on the lost slot's node when it is alive, else on a live node without a
        pool (one that joined or came back), else None."""
        if not self._ray.is_initialized():  # closed meanwhile
            return None
        nodes = await self._live_nodes()
        if nodes is None:
            raise RuntimeError(
                f"the cluster's head did not answer within {NODES_TIMEOUT_S:g} s (is it down?)"
            )
        assert self.dispatcher is not None
        used = {s.node for s in self.dispatcher.slots}
        choice = old.node if old.node in nodes else next((n for n in nodes if n not in used), None)
        if choice is None:
            return None
        started = await self._start_slot(choice, nodes[choice])
        if isinstance(started, str):
            raise RuntimeError(started)
        return started

    # -- evaluate and close ---------------------------------------------------------------

    async def evaluate(self, jobs: Sequence[EvalJob]) -> list[Evaluation]:
        """One evaluation per job, in order; jobs of lost nodes are resubmitted elsewhere.

        Raises:
            ClusterGone: every node's pool is lost and none can be started again.
        """
        if self.dispatcher is None:
            raise RuntimeError("RayEvaluator.evaluate called before start()")
        return await self.dispatcher.evaluate(jobs)

    @property
    def slots(self) -> list[_ActorSlot]:
        """The live pools (one per node), for watching and tests."""
        if self.dispatcher is None:
            return []
        return [s for s in self.dispatcher.slots if isinstance(s, _ActorSlot)]

    def close(self) -> None:
        """Stop every node's pool; shut Ray down if evolm started it. Safe to call twice."""
        if self.dispatcher is not None:
            slots = self.dispatcher.drain()
            refs = []
            for s in slots:
                if isinstance(s, _ActorSlot):
                    with contextlib.suppress(Exception):
                        refs.append(s.actor.close.remote())
            with contextlib.suppress(Exception):
                self._ray.wait(refs, num_returns=len(refs), timeout=5.0)
            for s in slots:
                s.kill()
        if self._owns_ray and self._ray is not None:
            self._ray.shutdown()
            self._owns_ray = False
