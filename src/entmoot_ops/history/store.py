"""Where the runs are remembered: SQLite on this machine (WAL, one file), or a PostgreSQL database a team shares.

Both hold the same tables, created and migrated by the suite (``MIGRATIONS``; SQLite counts them in its
``user_version``, PostgreSQL in ``entmoot_schema``):

- ``entmoot_runs``: one row per run and environment (when, the suite's version, the selection, who ran it where);
- ``entmoot_results``: one row per check, resource and run: the verdict, each reading with its value, threshold
  and unit, the remediation and its state, the duration, the silence that hid it;
- ``entmoot_states``: per check and resource, its latest state (changes.State), so that what changed since the last
  run is one small read however long the history; ``entmoot_silence_matches``: when each silence last hid a result.

Two runs that write at once (two on-calls; xdist's controller writes for its workers) serialise per environment: a
SQLite write transaction (``BEGIN IMMEDIATE``, waiting up to the timeout), a PostgreSQL advisory lock on the
environment's name. Each recomputes the states from the ones it finds under the lock, so neither's run is lost.
Every failure, a locked, full, corrupt or unreachable store, is one line (:class:`HistoryUnavailable`): the caller
says it and the run goes on.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entmoot_ops.boundary import outside_error
from entmoot_ops.config import HistorySettings
from entmoot_ops.errors import OpsError, one_line
from entmoot_ops.secrets import masker
from entmoot_ops.history.changes import State, advance

DAY = 86400.0


class HistoryUnavailable(OpsError):
    """The store could not be read or written: said in one line, never a verdict's cost."""


@dataclass(frozen=True)
class Remembered:
    """One check's result in one run, as the store keeps it."""

    check_id: str
    resource: str
    outcome: str
    readings: list[dict] = field(default_factory=list)  # label, value, limit, unit, op, gauge
    message: str = ""
    change: str = ""
    flapping: bool = False
    remediation: str = ""
    remediation_state: str = ""
    duration_seconds: float = 0.0
    silence_id: str | None = None
    at: float = 0.0  # filled in when read back: the run's time
    version: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.check_id, self.resource

    @property
    def has_gauge(self) -> bool:
        return any(reading.get("gauge") for reading in self.readings)


@dataclass(frozen=True)
class Run:
    id: str
    env: str
    at: float
    version: str
    selection: str
    by: str = field(default_factory=lambda: f"{user()}@{socket.gethostname()}")


_RESULT_COLUMNS = ("run_id", "env", "check_id", "resource", "at", "outcome", "change", "flapping", "gauges", "readings",
                   "message", "remediation", "remediation_state", "duration_seconds", "silence_id", "version")

# Each migration is a list of statements, applied in one transaction; a store at version N runs those after N. Write
# the SQL both SQLite and PostgreSQL accept (``?`` placeholders are psycopg's ``%s`` there).
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE entmoot_runs (id TEXT PRIMARY KEY, env TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
           version TEXT NOT NULL, selection TEXT NOT NULL, by_whom TEXT NOT NULL)""",
        "CREATE INDEX entmoot_runs_at ON entmoot_runs (at)",
        """CREATE TABLE entmoot_results (run_id TEXT NOT NULL, env TEXT NOT NULL, check_id TEXT NOT NULL,
           resource TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, outcome TEXT NOT NULL, change TEXT NOT NULL,
           flapping BOOLEAN NOT NULL, gauges BOOLEAN NOT NULL, readings TEXT NOT NULL, message TEXT NOT NULL,
           remediation TEXT NOT NULL, remediation_state TEXT NOT NULL, duration_seconds DOUBLE PRECISION NOT NULL,
           silence_id TEXT, version TEXT NOT NULL)""",
        "CREATE INDEX entmoot_results_check ON entmoot_results (env, check_id, at)",
        "CREATE INDEX entmoot_results_at ON entmoot_results (at)",
    ],
    [
        # What changed since the last run, without reading the history: each key's latest state. Filled from the
        # results a version-1 store already holds (backfill below).
        """CREATE TABLE entmoot_states (env TEXT NOT NULL, check_id TEXT NOT NULL, resource TEXT NOT NULL,
           outcome TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, since DOUBLE PRECISION NOT NULL, streak INTEGER NOT NULL,
           recent TEXT NOT NULL, flapping BOOLEAN NOT NULL, PRIMARY KEY (env, check_id, resource))""",
        """CREATE TABLE entmoot_silence_matches (env TEXT NOT NULL, silence_id TEXT NOT NULL,
           at DOUBLE PRECISION NOT NULL, PRIMARY KEY (env, silence_id))""",
        "CREATE INDEX entmoot_results_gauges ON entmoot_results (env, at) WHERE gauges",
    ],
]
SCHEMA_VERSION = len(MIGRATIONS)


class Store:
    """A connection to the store, used from one thread at a time (a lock sees to it)."""

    where: str
    placeholder = "?"

    def __init__(self, settings: HistorySettings):
        self.settings = settings
        self._lock = threading.Lock()

    # --- what the suite asks -------------------------------------------------------------------------------------

    def states(self, env: str) -> dict[tuple[str, str], State]:
        return _states(self._query(_STATES, (env,)))

    def gauge_readings(self, env: str, since: float) -> dict[tuple[str, str], list[Remembered]]:
        """The results since ``since`` that hold a gauge, oldest first, by check and resource: the points a trend is
        fitted through."""
        rows = self._query(f"SELECT {', '.join(_RESULT_COLUMNS)} FROM entmoot_results WHERE env = ? AND at >= ? AND gauges "
                           "ORDER BY at", (env, since))
        found: dict[tuple[str, str], list[Remembered]] = {}
        for row in rows:
            remembered = _remembered(row)
            found.setdefault(remembered.key, []).append(remembered)
        return found

    def results(self, env: str, check_id: str, since: float, resource: str | None = None) -> list[Remembered]:
        """A check's results since ``since``, oldest first (one resource, or all of them)."""
        where, arguments = "env = ? AND check_id = ? AND at >= ?", [env, check_id, since]
        if resource is not None:
            where, arguments = where + " AND resource = ?", [*arguments, resource]
        return [_remembered(row) for row in self._query(f"SELECT {', '.join(_RESULT_COLUMNS)} FROM entmoot_results "
                                                        f"WHERE {where} ORDER BY at", tuple(arguments))]

    def last_matched(self, env: str) -> dict[str, float]:
        return dict(self._query("SELECT silence_id, at FROM entmoot_silence_matches WHERE env = ?", (env,)))

    def record(self, run: Run, results: list[Remembered]) -> None:
        """One run of one environment: its results, the states they lead to, and the history kept to its retention."""
        settings = self.settings
        with self._writing(run.env) as execute:
            before = _states(self._read_in_transaction(_STATES, (run.env,)))
            after: dict[tuple[str, str], State] = {}
            for result in results:
                previous = after.get(result.key, before.get(result.key))
                if previous is not None and previous.at > run.at:
                    continue  # a later run committed first: the state is already past this one
                state = advance(previous, result.outcome, run.at, high=settings.flap_high_percent, low=settings.flap_low_percent)
                if state is not None:
                    after[result.key] = state
            execute("INSERT INTO entmoot_runs (id, env, at, version, selection, by_whom) VALUES (?, ?, ?, ?, ?, ?)",
                    [(run.id, run.env, run.at, run.version, run.selection, run.by)])
            execute(f"INSERT INTO entmoot_results ({', '.join(_RESULT_COLUMNS)}) VALUES ({', '.join('?' * len(_RESULT_COLUMNS))})",
                    [_row(run, result) for result in results])
            execute("""INSERT INTO entmoot_states (env, check_id, resource, outcome, at, since, streak, recent, flapping)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (env, check_id, resource) DO UPDATE SET
                       outcome = excluded.outcome, at = excluded.at, since = excluded.since, streak = excluded.streak,
                       recent = excluded.recent, flapping = excluded.flapping""",
                    [(run.env, check, resource, s.outcome, s.at, s.since, s.streak, s.recent, s.flapping)
                     for (check, resource), s in after.items()])
            execute("""INSERT INTO entmoot_silence_matches (env, silence_id, at) VALUES (?, ?, ?)
                       ON CONFLICT (env, silence_id) DO UPDATE SET at = excluded.at""",
                    sorted({(run.env, r.silence_id, run.at) for r in results if r.silence_id}))
            # This environment's retention, on its own rows: environments sharing a store may keep theirs longer.
            cutoff = [(run.env, run.at - settings.retention_days * DAY)]
            for table in ("entmoot_results", "entmoot_runs", "entmoot_silence_matches", "entmoot_states"):
                execute(f"DELETE FROM {table} WHERE env = ? AND at < ?", cutoff)

    def close(self) -> None:
        raise NotImplementedError

    # --- how each backend does it ------------------------------------------------------------------------------------

    def _query(self, sql: str, arguments: tuple) -> list[tuple]:
        raise NotImplementedError

    @contextmanager
    def _writing(self, env: str) -> Iterator[Callable[[str, list[tuple]], Any]]:
        raise NotImplementedError
        yield

    def _read_in_transaction(self, sql: str, arguments: tuple) -> list[tuple]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Whatever the store does wrong, one line: SQLite's own errors as it says them (locked, full, not a
        database), a server's through the boundary with the outside."""
        try:
            yield
        except HistoryUnavailable:
            raise
        except sqlite3.Error as exc:
            raise HistoryUnavailable(f"{self.where}: {one_line(exc)}", fix=f"if it is damaged, move {self.where.split(' ', 2)[-1]} "
                                                                           "aside: a new one is created") from None
        except Exception as exc:  # noqa: BLE001 - the boundary: every failure of the store becomes one line
            error = outside_error(self.where, exc)
            raise HistoryUnavailable(masker(str(error)), fix=error.fix) from None


_STATES = "SELECT check_id, resource, outcome, at, since, streak, recent, flapping FROM entmoot_states WHERE env = ?"


def _states(rows: list[tuple]) -> dict[tuple[str, str], State]:
    return {(c, r): State(o, at, since, streak, recent, bool(f)) for c, r, o, at, since, streak, recent, f in rows}


def _row(run: Run, r: Remembered) -> tuple:
    return (run.id, run.env, r.check_id, r.resource, run.at, r.outcome, r.change, r.flapping, r.has_gauge,
            json.dumps(r.readings, separators=(",", ":")), r.message, r.remediation, r.remediation_state,
            r.duration_seconds, r.silence_id, run.version)


def _remembered(row: tuple) -> Remembered:
    (_, _, check_id, resource, at, outcome, change, flapping, _, readings, message, remediation, remediation_state,
     duration, silence_id, version) = row
    return Remembered(check_id, resource, outcome, json.loads(readings), message, change, bool(flapping), remediation,
                      remediation_state, duration, silence_id, at, version)


def _backfill_states(rows: list[tuple], settings: HistorySettings) -> list[tuple]:
    """The states a version-1 store's results lead to (the results ordered by environment, key and time)."""
    states: dict[tuple[str, str, str], State] = {}
    for env, check, resource, at, outcome in rows:
        state = advance(states.get((env, check, resource)), outcome, at, high=settings.flap_high_percent,
                        low=settings.flap_low_percent)
        if state is not None:
            states[(env, check, resource)] = state
    return [(*key, s.outcome, s.at, s.since, s.streak, s.recent, s.flapping) for key, s in states.items()]


_BACKFILL_READ = "SELECT env, check_id, resource, at, outcome FROM entmoot_results ORDER BY env, check_id, resource, at"
_BACKFILL_WRITE = ("INSERT INTO entmoot_states (env, check_id, resource, outcome, at, since, streak, recent, flapping) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


class SqliteStore(Store):
    def __init__(self, settings: HistorySettings, path: Path):
        super().__init__(settings)
        self.path = path
        self.where = f"history store {path}"
        with self._guarded():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit: transactions are begun explicitly, a write one as BEGIN IMMEDIATE (the lock taken at once,
            # waited for up to the timeout, rather than a deadlock detected halfway through).
            self.connection = sqlite3.connect(path, timeout=settings.timeout_seconds, isolation_level=None,
                                              check_same_thread=False)
            try:
                self.connection.execute("PRAGMA journal_mode = WAL")
                self.connection.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
            except BaseException:
                self.connection.close()
                raise

    def _migrate(self) -> None:
        version = self.connection.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        _refuse_newer(version, self.where)
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            version = self.connection.execute("PRAGMA user_version").fetchone()[0]  # another run may have migrated it
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    self.connection.execute(statement)
            if version < 2 <= SCHEMA_VERSION:
                rows = self.connection.execute(_BACKFILL_READ).fetchall()
                self.connection.executemany(_BACKFILL_WRITE, _backfill_states(rows, self.settings))
            self.connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.connection.execute("COMMIT")
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise

    def _query(self, sql: str, arguments: tuple) -> list[tuple]:
        with self._lock, self._guarded():
            return self.connection.execute(sql, arguments).fetchall()

    @contextmanager
    def _writing(self, env: str) -> Iterator[Callable[[str, list[tuple]], Any]]:
        with self._lock, self._guarded():
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield lambda sql, rows: self.connection.executemany(sql, rows)
                self.connection.execute("COMMIT")
            except BaseException:
                if self.connection.in_transaction:
                    self.connection.execute("ROLLBACK")
                raise

    def _read_in_transaction(self, sql: str, arguments: tuple) -> list[tuple]:
        return self.connection.execute(sql, arguments).fetchall()

    def close(self) -> None:
        self.connection.close()


class PostgresStore(Store):
    placeholder = "%s"

    def __init__(self, settings: HistorySettings, dsn: str):
        import psycopg

        super().__init__(settings)
        self.where = "history store (PostgreSQL)"
        timeout_ms = int(settings.timeout_seconds * 1000)
        with self._guarded():
            self.connection = psycopg.connect(dsn, connect_timeout=max(1, round(settings.timeout_seconds)), autocommit=True,
                                              options=f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
                                              application_name="entmoot-ops history")
            try:
                self._migrate()
            except BaseException:
                self.connection.close()
                raise

    def _migrate(self) -> None:
        import psycopg

        try:  # the common case, and the cheap one: a store at this suite's version, no lock taken
            if self.connection.execute("SELECT max(version) FROM entmoot_schema").fetchone()[0] == SCHEMA_VERSION:
                return
        except psycopg.errors.UndefinedTable:
            pass  # a new store
        with self.connection.transaction():
            self.connection.execute("SELECT pg_advisory_xact_lock(hashtext('entmoot-ops history schema'))")
            self.connection.execute("CREATE TABLE IF NOT EXISTS entmoot_schema (version INTEGER NOT NULL)")
            row = self.connection.execute("SELECT max(version) FROM entmoot_schema").fetchone()
            version = row[0] or 0
            _refuse_newer(version, self.where)
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    self.connection.execute(statement)
            if version < 2 <= SCHEMA_VERSION:
                rows = self.connection.execute(_BACKFILL_READ).fetchall()
                with self.connection.cursor() as cursor:
                    cursor.executemany(self._sql(_BACKFILL_WRITE), _backfill_states(rows, self.settings))
            if version < SCHEMA_VERSION:
                self.connection.execute("DELETE FROM entmoot_schema")
                self.connection.execute("INSERT INTO entmoot_schema (version) VALUES (%s)", (SCHEMA_VERSION,))

    def _query(self, sql: str, arguments: tuple) -> list[tuple]:
        with self._lock, self._guarded():
            return self.connection.execute(self._sql(sql), arguments).fetchall()

    @contextmanager
    def _writing(self, env: str) -> Iterator[Callable[[str, list[tuple]], Any]]:
        with self._lock, self._guarded(), self.connection.transaction():
            self.connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"entmoot-ops history {env}",))
            cursor = self.connection.cursor()

            def execute(sql: str, rows: list[tuple]) -> None:
                if rows:
                    cursor.executemany(self._sql(sql), rows)
            yield execute

    def _read_in_transaction(self, sql: str, arguments: tuple) -> list[tuple]:
        return self.connection.execute(self._sql(sql), arguments).fetchall()

    def close(self) -> None:
        self.connection.close()


def _refuse_newer(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise HistoryUnavailable(f"{where} was written by a newer entmoot-ops (schema {version}, this one knows "
                                 f"{SCHEMA_VERSION})", fix="upgrade entmoot-ops on this runner")


def user() -> str:
    """Who runs this: the login name, or the uid where the system has no name for it (a CI container's user)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - getpass raises KeyError or OSError where the uid has no passwd entry
        return f"uid {os.getuid()}"


def default_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "entmoot-ops" / "history.sqlite3"


def open_store(settings: HistorySettings, resolve: Callable[[str, str], str]) -> Store:
    """The store an environment names: PostgreSQL when ``dsn`` is set (``resolve(reference, key)`` resolves it),
    else the SQLite file. Raises HistoryUnavailable (one line) whatever fails."""
    try:
        if settings.dsn:
            return PostgresStore(settings, resolve(settings.dsn, "history.dsn"))
        return SqliteStore(settings, Path(os.path.expanduser(settings.path)) if settings.path else default_path())
    except OpsError as exc:
        raise HistoryUnavailable(str(exc), fix=exc.fix) from None
