"""Stub trainers for the in-run fine-tuning tests, importable by name
(``tests.finetune.stub_trainer:record``), as ``finetune.trainer`` names them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from evolm.config import FinetuneConfig
from evolm.finetune.loop import RoundResult
from evolm.store import RunStore
from evolm.types import AddStatus

#: called (from the trainer's thread) once a round's adapter is written; tests set it
HOOK: Callable[[int], None] | None = None


def accepted_ids(db: Path) -> list[int]:
    """Ids of the children (seeds excluded) that entered the archive, as the database holds."""
    inserted = (int(AddStatus.NEW), int(AddStatus.IMPROVED))
    with RunStore(db, readonly=True) as store:
        return sorted(
            r["id"] for r in store.export_rows() if r["batch"] > 0 and r["add_status"] in inserted
        )


def record(db_paths: list[Path], out_dir: Path, round: int, config: FinetuneConfig) -> RoundResult:
    """Write what the round could see as its "adapter": the accepted ids of each database."""
    t0 = time.monotonic()
    (out_dir / "started").write_text("")
    if round == config.params.get("sleep_round", round):
        time.sleep(config.params.get("sleep", 0.0))
    seen = [accepted_ids(p) for p in db_paths]
    adapter = out_dir / "adapter.gguf"
    adapter.write_text(json.dumps({"round": round, "dbs": len(db_paths), "seen": seen}))
    if HOOK is not None:
        HOOK(round)
    metrics = {
        "train_examples": len(seen[0]),
        "val_examples": 1,
        "val_loss_before": 2.5,
        "val_loss_after": 1.25,
        "tokens_per_s": 1000.0,
        "nan_is_stored_as_null": float("nan"),
        "t0": t0,
        "t1": time.monotonic(),
    }
    return RoundResult(adapter, metrics)


def failing(db_paths: list[Path], out_dir: Path, round: int, config: FinetuneConfig) -> RoundResult:
    raise RuntimeError(f"round {round}: out of memory while training")
