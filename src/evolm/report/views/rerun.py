"""Views that re-run programs: Sodarace gait animations and image pictures.

A run database stores what the scoring returned, not what a program drew or how a walker
moved; these views re-evaluate the program (with its stored seed, so it does the same again) in
a :class:`~evolm.sandbox.SandboxPool` worker, never in this process, as ``evolm show`` does.
Each program gets an HTML fragment: the picture, or a short note saying why there is none.
Both functions are synchronous (they run their own event loop): call them from plain code, not
from inside a running asyncio loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evolm.report.views.common import fmt, note
from evolm.types import Evaluation, Individual, Program

__all__ = ["animations", "renders"]

_FPS = 15.0
_MAX_FRAMES = 150


def _load(run_db: str | Path) -> tuple[str, dict[str, Any], Any]:
    """The run's domain name, its parameters, and the open read-only store.

    Raises:
        ValueError: not a run database, or its configuration does not load.
    """
    from evolm.config import ConfigError, load_config
    from evolm.store import RunStore, StoreError

    try:
        store = RunStore(Path(run_db), readonly=True)
    except StoreError as exc:
        raise ValueError(str(exc)) from exc
    try:
        config = load_config(overrides=store.run_info()["config"])
    except (ConfigError, StoreError) as exc:
        store.close()
        raise ValueError(f"cannot read the run's configuration: {exc}") from exc
    return config.domain.name, dict(config.domain.params), store


def _programs(store: Any, ids: Sequence[int]) -> dict[int, Program | str]:
    out: dict[int, Program | str] = {}
    for pid in ids:
        try:
            found = store.program(int(pid))
        except KeyError:
            out[pid] = f"no program with id {pid} in this run"
            continue
        out[pid] = found.program if isinstance(found, Individual) else found
    return out


def _rerun(
    run_db: str | Path,
    ids: Sequence[int],
    domain_for: Callable[[str, dict[str, Any]], tuple[str, dict[str, Any], float] | str],
    draw: Callable[[Program, Evaluation, dict[str, Any]], str],
    timeout: float,
) -> dict[int, str]:
    """Re-evaluate ``ids`` of ``run_db`` in one sandbox pool and draw each result.

    ``domain_for(name, params)`` gives the sandbox domain, its parameters and a per-program
    deadline, or a note when the run's domain has no such view; ``draw`` makes the fragment of
    a successful evaluation. ``timeout`` bounds the whole batch: programs not reached in time
    get a note.
    """
    ids = [int(i) for i in ids]
    if not ids:
        return {}
    try:
        name, params, store = _load(run_db)
    except ValueError as exc:
        return {pid: note(f"cannot re-run: {exc}") for pid in ids}
    with store:
        programs = _programs(store, ids)
    chosen = domain_for(name, params)
    if isinstance(chosen, str):
        return {pid: note(chosen) for pid in ids}
    sandbox_domain, sandbox_params, per_program = chosen
    out: dict[int, str] = {pid: note(p) for pid, p in programs.items() if isinstance(p, str)}
    todo = [(pid, p) for pid, p in programs.items() if isinstance(p, Program)]
    if todo:
        out.update(
            asyncio.run(
                _evaluate_all(todo, sandbox_domain, sandbox_params, per_program, timeout, draw)
            )
        )
    return {pid: out[pid] for pid in ids}


async def _evaluate_all(
    todo: list[tuple[int, Program]],
    domain: str,
    params: dict[str, Any],
    per_program: float,
    timeout: float,
    draw: Callable[[Program, Evaluation, dict[str, Any]], str],
) -> dict[int, str]:
    from evolm.sandbox import SandboxPool, SandboxUnavailable

    deadline = time.monotonic() + max(float(timeout), 1.0)
    out: dict[int, str] = {}
    try:
        pool = SandboxPool(domain, params, workers=1, timeout=per_program)
        await asyncio.wait_for(pool.start(), max(deadline - time.monotonic(), 0.1))
    except (SandboxUnavailable, ValueError, TimeoutError) as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        return {pid: note(f"cannot start a sandbox to re-run it: {why}") for pid, _ in todo}
    try:
        for pid, prog in todo:
            left = deadline - time.monotonic()
            if left < 0.5:
                out[pid] = note(f"not re-run: the {timeout:g} s for re-running ran out")
                continue
            ev = await pool.evaluate(prog.code, prog.seed, timeout=min(per_program, left))
            if not ev.ok:
                out[pid] = note(f"re-running it failed: {ev.status.value}: {ev.error}")
                continue
            try:
                out[pid] = draw(prog, ev, params)
            except (ValueError, TypeError, KeyError) as exc:
                out[pid] = note(f"cannot draw it: {exc}")
    finally:
        pool.close()
    return out


def _sodarace(name: str, params: dict[str, Any]) -> tuple[str, dict[str, Any], float] | str:
    if name != "sodarace":
        return f"no animation for {name!r} programs (gait animations are Sodarace's)"
    from evolm.domains.sodarace import SodaraceDomain

    params = {k: v for k, v in params.items() if k != "record_fps"}
    try:
        domain = SodaraceDomain(**params)
    except (ValueError, TypeError) as exc:
        return f"the run's Sodarace parameters do not build a domain: {exc}"
    cfg = domain.sim_config
    params["record_fps"] = min(_FPS, _MAX_FRAMES / (cfg.sim_seconds + cfg.settle_seconds))
    return "sodarace", params, 2.0 * domain.eval_timeout


def _gait(prog: Program, ev: Evaluation, params: dict[str, Any]) -> str:
    from evolm.report.views.pictures import gait_svg

    caption = (
        f'<p class="evolm-caption">program {prog.id} re-run on {fmt(ev.extras.get("terrain"))}: '
        f"fitness {fmt(ev.fitness)} units</p>"
    )
    return f'<div class="evolm-view evolm-view-sodarace">{gait_svg(ev.extras)}{caption}</div>'


def animations(
    run_db_path: str | Path, program_ids: Sequence[int], *, timeout: float = 60.0
) -> dict[int, str]:
    """Gait animations of Sodarace programs, each an animated inline SVG (SVG ``<animate>``
    elements, no script), re-run with trajectory recording in a sandbox worker; a note for a
    program that cannot be re-run (or a run of another domain). ``timeout`` bounds the batch."""
    return _rerun(run_db_path, program_ids, _sodarace, _gait, timeout)


def _image(name: str, params: dict[str, Any]) -> tuple[str, dict[str, Any], float] | str:
    if name != "image":
        return f"no re-rendered picture for {name!r} programs (renders draws image programs)"
    from evolm.domains.image import ImageDomain

    try:
        domain = ImageDomain(**params)
    except (ValueError, TypeError) as exc:
        return f"the run's image parameters do not build a domain: {exc}"
    return "evolm.report.views.render_image:ImageRender", params, 2.0 * domain.eval_timeout


def _picture(prog: Program, ev: Evaluation, params: dict[str, Any]) -> str:
    from evolm.report.views.builtin import image_picture

    body = image_picture(ev.extras["pixels"], params, f"program {prog.id}, re-drawn")
    return f'<div class="evolm-view evolm-view-image">{body}</div>'


def renders(
    run_db_path: str | Path, program_ids: Sequence[int], *, timeout: float = 60.0
) -> dict[int, str]:
    """Pictures of image-domain programs (which the run database does not store), re-drawn in
    a sandbox worker with each program's seed and shown beside the target as PNG data URIs; a
    note for a program that cannot be re-run (or a run of another domain)."""
    return _rerun(run_db_path, program_ids, _image, _picture, timeout)
