"""``evolm show``: pictures of one program of a run (a Sodarace walker's body and gait).

The program is re-run in a separate evaluation worker process, never in the calling process,
with the run's domain parameters (or another terrain) and trajectory recording switched on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from evolm.store import RunStore, StoreError
from evolm.types import Individual, Program

__all__ = ["MAX_FRAMES", "show"]

MAX_FRAMES = 300
"""Most trajectory samples recorded (the frame rate is lowered for long simulations)."""
_FPS = 15.0


def _config(store: RunStore) -> Any:
    from evolm.config import ConfigError, load_config

    try:
        return load_config(overrides=store.run_info()["config"])
    except (ConfigError, StoreError) as exc:
        raise ValueError(f"cannot read the run's configuration: {exc}") from exc


def _by_cell(store: RunStore, config: Any, cell: int) -> Individual:
    from evolm.domains.base import get_domain
    from evolm.scheduler.rebuild import build_archive, rebuild_archive

    archive = build_archive(config, get_domain(config.domain.name, config.domain.params))
    rebuild_archive(archive, store)
    cells: dict[int, Individual] = {}
    for ind in archive:
        c = archive.cell_of(ind)
        if c is None:
            raise ValueError(
                f"a {config.archive.kind} archive has no cells; choose a program with --program"
            )
        cells[c] = ind
    if cell not in cells:
        filled = sorted(cells)
        listing = ", ".join(map(str, filled[:20])) + (" ..." if len(filled) > 20 else "")
        raise ValueError(f"cell {cell} holds no elite; filled cells: {listing or 'none'}")
    return cells[cell]


def _evaluate(code: str, seed: int, params: dict[str, Any], timeout: float) -> Any:
    from evolm.sandbox import SandboxPool

    async def run() -> Any:
        async with SandboxPool("sodarace", params, workers=1, timeout=timeout) as pool:
            return await pool.evaluate(code, seed)

    return asyncio.run(run())


def show(
    run_db: Path,
    *,
    program: int | None = None,
    cell: int | None = None,
    terrain: str | None = None,
    out_dir: Path = Path("."),
) -> list[Path]:
    """Draw one walker of a Sodarace run: a PNG of its body and a GIF of its gait.

    Args:
        run_db: the run database.
        program: id of the program to show; or
        cell: archive cell whose elite to show (the archive is rebuilt from the database).
        terrain: terrain to run it on (default: the run's own, with its parameters).
        out_dir: folder for the files (created if missing).

    Returns:
        ``[png, gif]``: ``walker-<id>.png`` and ``walker-<id>-<terrain>.gif`` in ``out_dir``.

    Raises:
        ValueError: not exactly one of ``program`` and ``cell``; the run is missing or not a
            Sodarace run; no such program or empty cell; unknown terrain; or the program does
            not build a valid walker (the message gives the status and the reason).
    """
    from evolm.domains.sodarace import SodaraceDomain
    from evolm.domains.sodarace.render import WalkerView, render_body, render_gait

    if (program is None) == (cell is None):
        raise ValueError("choose exactly one of program (an id) and cell (an archive cell)")
    try:
        store = RunStore(run_db, readonly=True)
    except StoreError as exc:
        raise ValueError(str(exc)) from exc
    with store:
        config = _config(store)
        if config.domain.name != "sodarace":
            raise ValueError(
                f"{run_db} is a {config.domain.name!r} run; show draws Sodarace walkers only"
            )
        if program is not None:
            try:
                found: Individual | Program = store.program(program)
            except KeyError:
                raise ValueError(f"no program with id {program} in {run_db}") from None
        else:
            assert cell is not None
            found = _by_cell(store, config, cell)
    prog = found.program if isinstance(found, Individual) else found

    params = dict(config.domain.params)
    if terrain is not None:
        base = SodaraceDomain(**params).terrain.name
        if SodaraceDomain(terrain=terrain).terrain.name != base:
            params = {k: v for k, v in params.items() if k not in ("terrain_params", "direction")}
        params["terrain"] = terrain
    params.pop("record_fps", None)
    domain = SodaraceDomain(**params)  # checks the parameters before any process starts
    cfg = domain.sim_config
    params["record_fps"] = min(_FPS, MAX_FRAMES / (cfg.sim_seconds + cfg.settle_seconds))
    ev = _evaluate(prog.code, prog.seed, params, 2.0 * domain.eval_timeout)
    if not ev.ok:
        raise ValueError(
            f"program {prog.id} does not give a walker to show: {ev.status.value}: {ev.error}"
        )
    name = domain.terrain.name
    view = WalkerView.from_extras(
        ev.extras, title=f"program {prog.id} on {name}: fitness {ev.fitness:.2f} units"
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = render_body(view, out_dir / f"walker-{prog.id}.png")
    gif = render_gait(view, out_dir / f"walker-{prog.id}-{name}.gif")
    return [png, gif]
