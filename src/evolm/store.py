"""The SQLite run database: the single source of truth of a run.

One file per run, in WAL mode. It holds the resolved configuration, every candidate ever produced
(evaluated or not) with its lineage, every evaluation, every LLM call (the replay cassette) and
events (archive insertions, stats per step, checkpoints). The engine writes each told batch in one
transaction, so a crash at any moment leaves the database at a batch boundary plus, at most,
programs of batches still in flight.

The schema is versioned by named migrations recorded in ``schema_migrations``; opening a database
applies the ones it lacks, in order.
"""

from __future__ import annotations

import errno
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolm.events import (
    EndEvent,
    Event,
    FinetuneRoundEvent,
    ResumeEvent,
    SandboxEvent,
    StepEvent,
)
from evolm.llm.base import Completion, Request
from evolm.types import Evaluation, Individual, Program, Status

__all__ = [
    "MAX_CALL_EXTRAS",
    "MAX_COMPLETION_CHARS",
    "MAX_ERROR_CHARS",
    "MAX_EXTRAS_CHARS",
    "MAX_EXTRAS_DEPTH",
    "MIGRATIONS",
    "RunStore",
    "StoreError",
    "StoredCall",
    "describe_db_error",
]


class StoreError(RuntimeError):
    """The run database is missing, not an evolm database, damaged, from a newer evolm, or
    cannot be written (a full disk)."""


FULL_DISK_BYTES = 1 << 20
"""Free space below which a SQLite I/O error on a run database is reported as a full disk."""


def _disk_full(path: Path) -> bool:
    try:
        st = os.statvfs(path.parent if str(path.parent) else ".")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_DISK_BYTES


def describe_db_error(path: str | Path, exc: BaseException) -> str:
    """What a SQLite or OS error on run database ``path`` means, and what to do: one paragraph
    (a full disk, a damaged file, a file that is not a database, a read-only location)."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", "") or ""
    err_no = getattr(exc, "errno", None)
    # SQLite reports a failed write of its shared-memory or journal file as a bare I/O error:
    # look at the free space to tell a full disk from a failing one.
    io_error = code == sqlite3.SQLITE_IOERR or name.startswith("SQLITE_IOERR")
    full = code == sqlite3.SQLITE_FULL or err_no in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    if full or ((io_error or code == sqlite3.SQLITE_CANTOPEN) and _disk_full(Path(path))):
        return (
            f"cannot write {path}: the disk is full ({exc}). Free some space on that file "
            f"system (or move the run database elsewhere) and run the command again; what was "
            "stored before is kept"
        )
    if code == sqlite3.SQLITE_CORRUPT:
        return (
            f"{path} is damaged ({exc}): SQLite found pages of the file that are not valid. "
            f"Restore it from a backup, or try `sqlite3 {path} .recover` to save what can be "
            "read into a new file"
        )
    if code == sqlite3.SQLITE_NOTADB:
        return (
            f"{path} is not an evolm run database ({exc}): the file is not SQLite, or its "
            "header was overwritten. Check the path; a damaged file must be restored from a "
            "backup"
        )
    if code == sqlite3.SQLITE_READONLY or err_no in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"cannot write {path}: the file or its directory is read-only ({exc}). Make it "
            "writable, or copy the run database somewhere writable"
        )
    if io_error:
        return (
            f"cannot read or write {path}: disk I/O error ({exc}). The disk may be full, "
            "failing or disconnected (a network file system?); free space or move the file, "
            "then run the command again"
        )
    if code == sqlite3.SQLITE_CANTOPEN:
        return f"cannot open {path} ({exc}): check that the path and its directory exist"
    return f"{path}: database error ({type(exc).__name__}: {exc})"


MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_initial",
        """
        CREATE TABLE runs (
          id INTEGER PRIMARY KEY CHECK (id = 1),
          created_at REAL NOT NULL,
          updated_at REAL NOT NULL,
          status TEXT NOT NULL,
          seed INTEGER NOT NULL,
          domain TEXT NOT NULL,
          config_json TEXT NOT NULL,
          versions_json TEXT NOT NULL
        );
        CREATE TABLE programs (
          id INTEGER PRIMARY KEY,
          batch INTEGER NOT NULL,
          code TEXT NOT NULL,
          parent_ids TEXT NOT NULL,
          operator TEXT NOT NULL,
          model TEXT,
          prompt_hash TEXT,
          generation INTEGER NOT NULL,
          llm_call_id INTEGER REFERENCES llm_calls(id),
          seed INTEGER NOT NULL,
          created_at REAL NOT NULL
        );
        CREATE INDEX programs_batch ON programs(batch);
        CREATE TABLE evaluations (
          program_id INTEGER PRIMARY KEY REFERENCES programs(id),
          status TEXT NOT NULL,
          fitness REAL,
          descriptors TEXT,
          extras TEXT NOT NULL,
          wall_time REAL NOT NULL,
          cpu_time REAL NOT NULL,
          error TEXT,
          add_status INTEGER,
          evaluated_at REAL NOT NULL
        );
        CREATE TABLE llm_calls (
          id INTEGER PRIMARY KEY,
          batch INTEGER,
          request_key TEXT NOT NULL,
          request_json TEXT NOT NULL,
          seed INTEGER,
          response TEXT,
          model TEXT,
          tokens_in INTEGER NOT NULL DEFAULT 0,
          tokens_out INTEGER NOT NULL DEFAULT 0,
          latency REAL NOT NULL DEFAULT 0,
          cost REAL NOT NULL DEFAULT 0,
          error TEXT,
          finish_reason TEXT,
          created_at REAL NOT NULL
        );
        CREATE INDEX llm_calls_key ON llm_calls(request_key);
        CREATE TABLE events (
          id INTEGER PRIMARY KEY,
          batch INTEGER,
          kind TEXT NOT NULL,
          payload TEXT NOT NULL,
          created_at REAL NOT NULL
        );
        CREATE INDEX events_kind ON events(kind, batch);
        """,
    ),
    # What a backend reports about a call besides its answer (retries, queue time, the replayed
    # call's id): Completion.extras, as JSON.
    ("0002_llm_call_extras", "ALTER TABLE llm_calls ADD COLUMN extras_json TEXT"),
)

MAX_CALL_EXTRAS = 4096
"""The most characters of ``Completion.extras`` JSON stored per LLM call (diagnostics, not data:
longer extras are replaced by ``{"truncated": <length>}``)."""

MAX_COMPLETION_CHARS = 1 << 20
"""The most characters of an LLM completion stored per call (1 Mi; a program fits in far
less). A longer completion is stored cut to this length, and the call's extras record
``{"response_truncated": <original length>}``; a replay of such a call answers with an error
instead of the cut text (see :mod:`evolm.llm.replay`)."""

MAX_EXTRAS_CHARS = 64 * 1024
"""The most characters of an evaluation's ``extras`` JSON stored per row (64 Ki). Longer extras
are replaced by ``{"truncated": <length>, "keys": [<the first 20 top-level keys>]}``."""

MAX_EXTRAS_DEPTH = 32
"""The deepest nesting of lists and dicts kept when storing extras (evaluations and LLM calls);
anything deeper is replaced by the string ``"<nested deeper than 32 levels>"``, so hostile
extras cannot make storing (or a resume) fail with a RecursionError."""

MAX_ERROR_CHARS = 16 * 1024
"""The most characters of an evaluation's error text stored per row (its first part is kept,
followed by ``... [<n> more characters]``)."""


_HAS_ROLE = (
    '(extras_json IS NOT NULL AND (extras_json LIKE \'%"role":"judge"%\''
    ' OR extras_json LIKE \'%"role":"task"%\'))'
)
"""SQL: an ``llm_calls`` row made to score a candidate (its extras, stored as compact sorted
JSON, carry ``"role": "judge"`` or ``"task"``); operator calls carry no role."""


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _call_extras(extras: dict[str, Any], response_len: int | None = None) -> str | None:
    text = _json(_plain(extras)) if extras else None
    if text is not None and len(text) > MAX_CALL_EXTRAS:
        role = extras.get("role")  # a scoring call stays one (see _HAS_ROLE)
        text = _json({"truncated": len(text), **({"role": role} if role else {})})
    if response_len is None:
        return text
    marked = json.loads(text) if text else {}
    marked["response_truncated"] = response_len
    return _json(marked)


def _eval_extras(extras: dict[str, Any]) -> str:
    text = _json(_plain(extras))
    if len(text) <= MAX_EXTRAS_CHARS:
        return text
    keys = [str(k)[:100] for k in list(extras)[:20]] if isinstance(extras, dict) else []
    return _json({"truncated": len(text), "keys": keys})


def _cap_error(error: str | None) -> str | None:
    if error is None or len(error) <= MAX_ERROR_CHARS:
        return error
    return f"{error[:MAX_ERROR_CHARS]}... [{len(error) - MAX_ERROR_CHARS} more characters]"


def _read_call_extras(row: sqlite3.Row) -> dict[str, Any]:
    # sqlite3.Row's `in` tests values, not column names; files opened read-only may be older
    raw = row["extras_json"] if "extras_json" in row.keys() else None  # noqa: SIM118
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"unreadable": raw[:200]}
    return value if isinstance(value, dict) else {"unreadable": raw[:200]}


_TOO_DEEP = f"<nested deeper than {MAX_EXTRAS_DEPTH} levels>"


def _plain(obj: Any, depth: int = 0) -> Any:
    """Evaluator extras as strict JSON: numpy arrays and scalars become lists and numbers,
    non-finite floats become the strings "nan", "inf" and "-inf", other objects their repr
    (at most 200 characters); containers nested deeper than :data:`MAX_EXTRAS_DEPTH` become a
    marker string."""
    if depth >= MAX_EXTRAS_DEPTH and isinstance(obj, dict | list | tuple):
        return _TOO_DEEP
    if isinstance(obj, dict):
        return {str(k): _plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v, depth + 1) for v in obj]
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars
        try:
            value = obj.tolist()
        except RecursionError:
            return _TOO_DEEP
        return value if value is obj else _plain(value, depth)
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    try:
        text = repr(obj)
    except Exception as exc:  # a hostile __repr__
        text = f"<unrepresentable {type(obj).__name__}: {type(exc).__name__}>"
    return text[:200]


@dataclass(frozen=True)
class StoredCall:
    """One recorded LLM call: its row id, batch, request key and seed, the request as stored
    (JSON) and the answer, with the backend's ``Completion.extras`` as stored."""

    id: int
    batch: int | None
    request_key: str
    seed: int | None
    request_json: str
    completion: Completion

    @property
    def request(self) -> Request:
        """The request, parsed from its stored JSON."""
        return Request.from_json(self.request_json)


class RunStore:
    """A run database file: the only place that knows its SQL.

    Callers read and write through the methods below; the SQLite connection is private.

    Args:
        path: the database file; created (with the schema) when missing unless ``create`` is
            False.
        create: allow creating a new file.
        readonly: open read-only (reports, export, replay).

    Raises:
        StoreError: the file is missing (with ``create=False``), not SQLite, or has migrations
            this version of evolm does not know.
    """

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False) -> None:
        self.path = Path(path)
        if not self.path.exists() and (readonly or not create):
            raise StoreError(f"run database {self.path} does not exist")
        if not readonly and not create:
            # check before writing anything: a file this refuses is left as it was
            with RunStore(self.path, readonly=True) as probe:
                probe.run_info()
        try:
            if readonly:
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(str(self.path), isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(describe_db_error(self.path, exc)) from exc
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA busy_timeout = 10000")
            if not readonly:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._conn.execute("PRAGMA foreign_keys = ON")
                self._migrate()
            else:
                self._check_known_schema()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            code = getattr(exc, "sqlite_errorcode", None)
            if code in (sqlite3.SQLITE_NOTADB, None) or str(exc) == "file is not a database":
                raise StoreError(
                    f"{self.path} is not an evolm run database: {exc}. Check the path "
                    "(`evolm run` creates run databases)"
                ) from exc
            raise StoreError(describe_db_error(self.path, exc)) from exc
        except BaseException:
            self._conn.close()
            raise
        self._in_tx = False

    def _loads(self, text: str | None, where: str) -> Any:
        """Parse JSON stored in ``where`` (e.g. "runs.config_json"), naming the file and the
        place when it is not JSON (the file was changed outside evolm)."""
        try:
            return json.loads(text)  # type: ignore[arg-type]
        except (TypeError, ValueError, RecursionError) as exc:
            raise StoreError(
                f"{self.path} is damaged: {where} is not valid JSON ({type(exc).__name__}: "
                f"{exc}). The file was changed outside evolm; restore it from a backup"
            ) from exc

    def _typed(self, cls: Any, payload: Any, *args: Any) -> Any:
        """A typed event from its stored payload, naming the file when the payload is not one."""
        try:
            return cls.from_payload(payload, *args)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(
                f"{self.path} is damaged: a '{cls.kind}' event does not hold what evolm wrote "
                f"({type(exc).__name__}: {exc}). The file was changed outside evolm; restore it "
                "from a backup"
            ) from exc

    # -- schema ---------------------------------------------------------------------------
    def _applied(self) -> list[str]:
        exists = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
        ).fetchone()
        if not exists:
            return []
        return [
            r[0] for r in self._conn.execute("SELECT name FROM schema_migrations ORDER BY rowid")
        ]

    def _check_known_schema(self) -> None:
        known = {name for name, _ in MIGRATIONS}
        applied = self._applied()
        if not applied:
            raise StoreError(f"{self.path} is not an evolm run database (no schema_migrations)")
        unknown = [m for m in applied if m not in known]
        if unknown:
            raise StoreError(
                f"{self.path} was written by a newer evolm (unknown migrations {unknown}); "
                "upgrade evolm to open it"
            )

    def _migrate(self) -> None:
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        applied = self._applied()
        known = [name for name, _ in MIGRATIONS]
        unknown = [m for m in applied if m not in known]
        if unknown:
            raise StoreError(
                f"{self.path} was written by a newer evolm (unknown migrations {unknown}); "
                "upgrade evolm to open it"
            )
        for name, sql in MIGRATIONS:
            if name in applied:
                continue
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in sql.split(";"):
                    if stmt.strip():
                        self._conn.execute(stmt)
                self._conn.execute(
                    "INSERT INTO schema_migrations(name, applied_at) VALUES (?, ?)",
                    (name, time.time()),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    @property
    def migrations(self) -> list[str]:
        return self._applied()

    # -- transactions ---------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic transaction (nested uses join the outer one)."""
        if self._in_tx:
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            self._in_tx = False

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs -----------------------------------------------------------------------------
    def create_run(
        self, *, seed: int, domain: str, config: dict[str, Any], versions: dict[str, str]
    ) -> None:
        if self._conn.execute("SELECT 1 FROM runs").fetchone():
            raise StoreError(
                f"{self.path} already holds a run; use `evolm resume {self.path}` to continue it "
                "or choose another --out file"
            )
        now = time.time()
        self._conn.execute(
            "INSERT INTO runs VALUES (1, ?, ?, 'running', ?, ?, ?, ?)",
            (now, now, seed, domain, _json(config), _json(versions)),
        )

    def has_run(self) -> bool:
        """Whether the file holds a run (False: created, but its run never began)."""
        return self._conn.execute("SELECT 1 FROM runs").fetchone() is not None

    def run_info(self) -> dict[str, Any]:
        row = self._conn.execute("SELECT * FROM runs WHERE id = 1").fetchone()
        if row is None:
            raise StoreError(
                f"{self.path} holds no run: the evolm process that created it stopped before "
                f"the run began. Nothing was stored in it; delete it (rm {self.path}) and start "
                "again with `evolm run`"
            )
        d = dict(row)
        d["config"] = self._loads(d.pop("config_json"), "the run's configuration (config_json)")
        d["versions"] = self._loads(d.pop("versions_json"), "the run's versions_json")
        if not isinstance(d["config"], dict):
            raise StoreError(
                f"{self.path} is damaged: the run's configuration (config_json) is not a JSON "
                "object. The file was changed outside evolm; restore it from a backup"
            )
        return d

    def update_config(self, config: dict[str, Any]) -> None:
        """Replace the run's stored configuration (``evolm resume`` with raised budgets)."""
        self._conn.execute(
            "UPDATE runs SET config_json = ?, updated_at = ? WHERE id = 1",
            (_json(config), time.time()),
        )

    def set_status(self, status: str) -> None:
        self._conn.execute(
            "UPDATE runs SET status = ?, updated_at = ? WHERE id = 1", (status, time.time())
        )

    # -- programs and evaluations --------------------------------------------------------
    def max_program_id(self) -> int:
        row = self._conn.execute("SELECT MAX(id) FROM programs").fetchone()
        return int(row[0]) if row[0] is not None else -1

    def add_programs(self, programs: Sequence[Program]) -> None:
        self._conn.executemany(
            "INSERT INTO programs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    p.id,
                    p.batch,
                    p.code,
                    _json(list(p.parent_ids)),
                    p.operator,
                    p.model,
                    p.prompt_hash,
                    p.generation,
                    p.llm_call_id,
                    p.seed,
                    p.created_at,
                )
                for p in programs
            ],
        )

    def add_evaluations(self, items: Sequence[tuple[int, Evaluation, int | None]]) -> None:
        """Store ``(program_id, evaluation, add_status or None)`` rows."""
        now = time.time()
        rows = []
        for pid, ev, add_status in items:
            rows.append(
                (
                    pid,
                    ev.status.value,
                    ev.fitness,
                    None if ev.descriptors is None else _json(list(ev.descriptors)),
                    _eval_extras(ev.extras),
                    ev.wall_time,
                    ev.cpu_time,
                    _cap_error(ev.error),
                    add_status,
                    now,
                )
            )
        self._conn.executemany("INSERT INTO evaluations VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def _program(self, row: sqlite3.Row) -> Program:
        return Program(
            id=row["id"],
            code=row["code"],
            parent_ids=tuple(self._loads(row["parent_ids"], f"program {row['id']}'s parent_ids")),
            operator=row["operator"],
            model=row["model"],
            prompt_hash=row["prompt_hash"],
            generation=row["generation"],
            created_at=row["created_at"],
            batch=row["batch"],
            llm_call_id=row["llm_call_id"],
            seed=row["seed"],
        )

    def _evaluation(self, row: sqlite3.Row) -> Evaluation:
        desc = row["descriptors"]
        where = f"the evaluation of program {row['id']}"
        return Evaluation(
            status=Status(row["status"]),
            fitness=row["fitness"],
            descriptors=None
            if desc is None
            else tuple(self._loads(desc, where + " (descriptors)")),
            extras=self._loads(row["extras"], where + " (extras)"),
            wall_time=row["wall_time"],
            cpu_time=row["cpu_time"],
            error=row["error"],
        )

    def evaluated(self, max_batch: int | None = None) -> Iterator[Individual]:
        """Every evaluated program, in (batch, id) order: the order the archive saw them."""
        sql = (
            "SELECT p.*, e.status, e.fitness, e.descriptors, e.extras, e.wall_time, e.cpu_time,"
            " e.error FROM programs p JOIN evaluations e ON e.program_id = p.id"
        )
        args: tuple[Any, ...] = ()
        if max_batch is not None:
            sql += " WHERE p.batch <= ?"
            args = (max_batch,)
        sql += " ORDER BY p.batch, p.id"
        for row in self._conn.execute(sql, args):
            yield Individual(self._program(row), self._evaluation(row))

    def program(self, pid: int) -> Individual | Program:
        row = self._conn.execute(
            "SELECT p.*, e.status, e.fitness, e.descriptors, e.extras, e.wall_time, e.cpu_time,"
            " e.error FROM programs p LEFT JOIN evaluations e ON e.program_id = p.id"
            " WHERE p.id = ?",
            (pid,),
        ).fetchone()
        if row is None:
            raise KeyError(f"no program with id {pid} in {self.path}")
        prog = self._program(row)
        return prog if row["status"] is None else Individual(prog, self._evaluation(row))

    def export_rows(self) -> Iterator[dict[str, Any]]:
        """Every program, evaluated or not, with lineage and scores, as plain dicts.

        ``metrics`` is the evaluator's dict of metrics where the domain records one (the
        ``task`` domain's ``extras["metrics"]``), else None."""
        sql = (
            "SELECT p.*, e.status, e.fitness, e.descriptors, e.error, e.add_status, e.wall_time,"
            " e.extras FROM programs p LEFT JOIN evaluations e ON e.program_id = p.id"
            " ORDER BY p.id"
        )
        for row in self._conn.execute(sql):
            d = dict(row)
            where = f"program {d['id']}"
            d["parent_ids"] = self._loads(d["parent_ids"], where + "'s parent_ids")
            if d["descriptors"] is not None:
                d["descriptors"] = self._loads(d["descriptors"], where + "'s descriptors")
            extras = d.pop("extras")
            extras = self._loads(extras, where + "'s extras") if extras is not None else None
            metrics = extras.get("metrics") if isinstance(extras, dict) else None
            d["metrics"] = metrics if isinstance(metrics, dict) else None
            yield d

    def counts(self) -> dict[str, int]:
        """Program counts by evaluation status (``pending`` for unevaluated)."""
        out: dict[str, int] = {}
        for status, n in self._conn.execute(
            "SELECT COALESCE(e.status, 'pending'), COUNT(*) FROM programs p"
            " LEFT JOIN evaluations e ON e.program_id = p.id GROUP BY 1"
        ):
            out[status] = n
        return out

    def delete_unevaluated_after(self, batch: int) -> int:
        """Drop programs of batches after ``batch`` (in flight at a crash); returns how many."""
        with self.transaction():
            cur = self._conn.execute(
                "DELETE FROM programs WHERE batch > ? AND id NOT IN"
                " (SELECT program_id FROM evaluations)",
                (batch,),
            )
        return cur.rowcount

    def drop_after(self, batch: int) -> None:
        """Drop the LLM calls and events of batches after ``batch`` (left by a crash), in one
        transaction; programs go with :meth:`delete_unevaluated_after`."""
        with self.transaction():
            self._conn.execute("DELETE FROM llm_calls WHERE batch > ?", (batch,))
            self._conn.execute("DELETE FROM events WHERE batch > ?", (batch,))

    def evaluation_totals(self) -> dict[str, float]:
        """``evaluations`` (count), and their summed ``wall_time`` and ``cpu_time`` in seconds."""
        row = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(wall_time), 0), COALESCE(SUM(cpu_time), 0)"
            " FROM evaluations"
        ).fetchone()
        return {"evaluations": row[0], "wall_time": float(row[1]), "cpu_time": float(row[2])}

    # -- llm calls ------------------------------------------------------------------------
    def add_llm_call(self, batch: int, request: Request, completion: Completion) -> int:
        """Store one LLM call; a completion longer than :data:`MAX_COMPLETION_CHARS` is stored
        cut, with its original length in the extras (``response_truncated``)."""
        text, cut = completion.text, None
        if text is not None and len(text) > MAX_COMPLETION_CHARS:
            text, cut = text[:MAX_COMPLETION_CHARS], len(text)
        cur = self._conn.execute(
            "INSERT INTO llm_calls(batch, request_key, request_json, seed, response, model,"
            " tokens_in, tokens_out, latency, cost, error, finish_reason, created_at, extras_json)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                batch,
                request.key(),
                request.to_json(),
                request.seed,
                text,
                completion.model,
                completion.tokens_in,
                completion.tokens_out,
                completion.latency,
                completion.cost,
                completion.error,
                completion.finish_reason,
                time.time(),
                _call_extras(completion.extras, cut),
            ),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def llm_call(self, call_id: int) -> tuple[Request, Completion]:
        """The request and answer stored under ``call_id``.

        Raises:
            KeyError: no call has that id.
        """
        row = self._conn.execute("SELECT * FROM llm_calls WHERE id = ?", (call_id,)).fetchone()
        if row is None:
            raise KeyError(f"no LLM call with id {call_id} in {self.path}")
        return Request.from_json(row["request_json"]), self._completion(row)

    def llm_calls(self) -> Iterator[StoredCall]:
        """Every recorded LLM call, in the order they were made."""
        for row in self._conn.execute("SELECT * FROM llm_calls ORDER BY id"):
            yield StoredCall(
                id=row["id"],
                batch=row["batch"],
                request_key=row["request_key"],
                seed=row["seed"],
                request_json=row["request_json"],
                completion=self._completion(row),
            )

    @staticmethod
    def _completion(row: sqlite3.Row) -> Completion:
        return Completion(
            text=row["response"] or "",
            model=row["model"] or "",
            tokens_in=row["tokens_in"],
            tokens_out=row["tokens_out"],
            latency=row["latency"],
            error=row["error"],
            finish_reason=row["finish_reason"],
            cost=row["cost"],
            extras=_read_call_extras(row),
        )

    def llm_totals(self) -> dict[str, float]:
        """Totals of the recorded calls: ``calls`` (the operators' calls), ``judge_calls``
        (calls that scored candidates, stored with a ``role`` in their extras), and the tokens,
        cost and errors of all of them."""
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(llm_calls)")}
        # a database opened read-only may predate extras_json: no call there has a role
        role = _HAS_ROLE if "extras_json" in columns else "0"
        row = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(tokens_in),0), COALESCE(SUM(tokens_out),0),"
            " COALESCE(SUM(cost),0), COALESCE(SUM(error IS NOT NULL),0),"
            f" COALESCE(SUM({role}),0) FROM llm_calls"
        ).fetchone()
        return {
            "calls": row[0] - row[5],
            "judge_calls": row[5],
            "tokens_in": row[1],
            "tokens_out": row[2],
            "cost": row[3],
            "errors": row[4],
        }

    def llm_models(self) -> list[str]:
        """The model names the recorded LLM calls carry, in order of first use."""
        rows = self._conn.execute(
            "SELECT model FROM llm_calls WHERE model IS NOT NULL GROUP BY model ORDER BY MIN(id)"
        ).fetchall()
        return [r[0] for r in rows]

    # -- events ---------------------------------------------------------------------------
    def add_event(self, kind: str, payload: dict[str, Any], batch: int | None = None) -> None:
        """Store an event of any kind (the typed records go through :meth:`record`)."""
        self._conn.execute(
            "INSERT INTO events(batch, kind, payload, created_at) VALUES (?,?,?,?)",
            (batch, kind, _json(payload), time.time()),
        )

    def record(self, event: Event) -> None:
        """Store a typed event (see :mod:`evolm.events`) under its kind and batch."""
        self.add_event(event.kind, event.to_payload(), batch=event.row_batch)

    def events(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        """Raw events as ``{"id", "batch", "kind", "payload", "created_at"}`` dicts, in order
        (for kinds without a typed record; prefer :meth:`steps` and the like)."""
        sql = "SELECT * FROM events"
        args: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            args = (kind,)
        for row in self._conn.execute(sql + " ORDER BY id", args):
            d = dict(row)
            d["payload"] = self._loads(
                d["payload"], f"the payload of event {d['id']} ({d['kind']})"
            )
            yield d

    def steps(self, max_batch: int | None = None) -> list[StepEvent]:
        """The ``step`` events (one per told batch), in order, up to ``max_batch``."""
        out = []
        for e in self.events(StepEvent.kind):
            if e["batch"] is None or (max_batch is not None and e["batch"] > max_batch):
                continue
            out.append(self._typed(StepEvent, e["payload"], int(e["batch"])))
        return out

    def last_step(self) -> StepEvent | None:
        """The latest ``step`` event: the run's progress at its last told batch."""
        e = self.last_event(StepEvent.kind)
        if e is None or e["batch"] is None:
            return None
        return self._typed(StepEvent, e["payload"], int(e["batch"]))

    def end_event(self) -> EndEvent | None:
        """How the run's latest stretch ended, or None while it runs (or after a crash)."""
        e = self.last_event(EndEvent.kind)
        return None if e is None else self._typed(EndEvent, e["payload"])

    def resumes(self) -> list[ResumeEvent]:
        """The ``resume`` events, in order."""
        return [self._typed(ResumeEvent, e["payload"]) for e in self.events(ResumeEvent.kind)]

    def sandbox_events(self) -> list[SandboxEvent]:
        """Where programs ran, one event per start or resume, in order."""
        return [self._typed(SandboxEvent, e["payload"]) for e in self.events(SandboxEvent.kind)]

    def finetune_rounds(self, max_batch: int | None = None) -> list[FinetuneRoundEvent]:
        """The fine-tuning rounds recorded after batches up to ``max_batch``, in order."""
        out = []
        for e in self.events(FinetuneRoundEvent.kind):
            if e["batch"] is None or (max_batch is not None and e["batch"] > max_batch):
                continue
            out.append(self._typed(FinetuneRoundEvent, e["payload"], int(e["batch"])))
        return out

    def arm_totals(self) -> dict[str, dict[str, float]]:
        """Per (operator, model) arm, summed over the told batches: ``chosen`` (candidates),
        ``parsed`` (the completion gave code), ``valid`` (the code ran and was scored),
        ``inserted`` (it entered the archive) and ``cost`` (USD with prices, else tokens)."""
        out: dict[str, dict[str, float]] = {}
        for step in self.steps():
            for label, row in step.arms.items():
                acc = out.setdefault(label, {})
                for key, value in row.items():
                    acc[key] = acc.get(key, 0) + value
        return out

    def last_event(self, kind: str) -> dict[str, Any] | None:
        """The latest raw event of ``kind`` (see :meth:`events`), or None."""
        row = self._conn.execute(
            "SELECT * FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,)
        ).fetchone()
        if row is None:
            return None
        d = dict(row)
        d["payload"] = self._loads(d["payload"], f"the payload of event {d['id']} ({d['kind']})")
        return d
