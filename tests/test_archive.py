"""The archive of old jobs (jobs.archive-old) under concurrent writes on the sandbox's real PostgreSQL: no row lost, none
duplicated. The runbook's INSERT-then-DELETE loses the row that becomes eligible between its two statements."""

from __future__ import annotations

import random
import threading
import time

import psycopg

from remediations.maintenance import archive_old_jobs

MARK = "archive-test"
OLD = "now() - interval '120 days'"


def _connect(sandbox) -> psycopg.Connection:
    return psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_ADMIN_DSN"], autocommit=True)


def _insert(conn: psycopg.Connection, count: int, status: str = "completed", mark: str = MARK) -> list[int]:
    return [row[0] for row in conn.execute(
        f"INSERT INTO optimization_jobs (project_id, status, created_at, started_at, completed_at, error) "
        f"SELECT 1 + g %% 200, %s, {OLD}, {OLD}, {OLD}, %s FROM generate_series(1, %s) g RETURNING id",  # noqa: S608 - constants
        (status, mark, count)).fetchall()]


def _where(conn: psycopg.Connection, ids: list[int]) -> tuple[int, int, int]:
    live = conn.execute("SELECT count(*) FROM optimization_jobs WHERE id = ANY(%s)", (ids,)).fetchone()[0]
    archived = conn.execute("SELECT count(*) FROM optimization_jobs_archive WHERE id = ANY(%s)", (ids,)).fetchone()[0]
    both = conn.execute("SELECT count(*) FROM optimization_jobs j JOIN optimization_jobs_archive a USING (id) WHERE j.id = ANY(%s)",
                        (ids,)).fetchone()[0]
    return live, archived, both


def _cleanup(conn: psycopg.Connection, mark: str) -> None:
    """Leave the tables as found: the rows gone, and their indexes rebuilt (tens of thousands of rows inserted and
    deleted leave the B-trees mostly empty pages, which postgres.reindex-candidates rightly reports)."""
    conn.execute("DELETE FROM optimization_jobs WHERE error = %s", (mark,))
    conn.execute("DELETE FROM optimization_jobs_archive WHERE error = %s", (mark,))
    for table in ("optimization_jobs", "optimization_jobs_archive"):
        # The replica's feedback holds the xmin horizon back for a few seconds: VACUUM until the dead rows are gone
        # (it also truncates the empty pages at the end of the table).
        deadline = time.monotonic() + 30
        while True:
            conn.execute(f"VACUUM (ANALYZE) {table}")
            conn.execute("SELECT pg_stat_clear_snapshot()")
            dead = conn.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", (table,)).fetchone()[0]
            if dead < 100 or time.monotonic() > deadline:
                break
            time.sleep(1)
        conn.execute(f"REINDEX TABLE CONCURRENTLY {table}")


def test_the_archive_loses_and_duplicates_nothing_under_concurrent_inserts_and_updates(sandbox):
    with _connect(sandbox) as setup:
        ids = _insert(setup, 3000) + _insert(setup, 500, status="running")
    stop = threading.Event()
    written: list[int] = []
    errors: list[BaseException] = []

    def writer() -> None:
        rng = random.Random(7)
        try:
            with _connect(sandbox) as conn:
                while not stop.is_set():
                    written.extend(_insert(conn, 20))  # new rows, eligible at once
                    time.sleep(0.02)  # a busy application, not a bulk load: the test is about interleaving
                    chosen = rng.sample(ids, 50)
                    with conn.transaction():  # rows changing under the archive: touched, and running ones finishing
                        conn.execute("UPDATE optimization_jobs SET started_at = started_at WHERE id = ANY(%s)", (chosen,))
                        conn.execute("UPDATE optimization_jobs SET status = 'completed' WHERE id = ANY(%s) AND status = 'running'", (chosen,))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    moved = 0
    try:
        with _connect(sandbox) as archiver:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                moved += archive_old_jobs(archiver, 90, batch_rows=100, max_batches=5)
            stop.set()
            for thread in threads:
                thread.join(30)
            moved += archive_old_jobs(archiver, 90, batch_rows=100, max_batches=1000)
            everything = ids + written
            live, archived, both = _where(archiver, everything)
            remaining_running = archiver.execute("SELECT count(*) FROM optimization_jobs WHERE id = ANY(%s) AND status = 'running'",
                                                 (everything,)).fetchone()[0]
    finally:
        stop.set()
        with _connect(sandbox) as conn:
            _cleanup(conn, MARK)
    assert not errors, errors
    assert both == 0 and live + archived == len(everything), (live, archived, len(everything))
    assert live == remaining_running and archived == moved  # every finished row moved once, only running ones stayed


def test_the_runbooks_insert_then_delete_loses_a_row_the_single_statement_does_not(sandbox):
    mark = "archive-test-runbook"
    with _connect(sandbox) as runbook, _connect(sandbox) as application:
        (finishing,) = _insert(runbook, 1, status="running", mark=mark)
        # The runbook's step [4], statement by statement, with the application finishing the job in between.
        runbook.execute("INSERT INTO optimization_jobs_archive SELECT * FROM optimization_jobs "
                        "WHERE completed_at < NOW() - INTERVAL '90 days' AND status = 'completed' AND error = %s", (mark,))
        application.execute("UPDATE optimization_jobs SET status = 'completed' WHERE id = %s", (finishing,))
        runbook.execute("DELETE FROM optimization_jobs WHERE completed_at < NOW() - INTERVAL '90 days' AND status = 'completed' "
                        "AND error = %s", (mark,))
        lost = _where(runbook, [finishing])
        (kept,) = _insert(runbook, 1, status="running", mark=mark)
        application.execute("UPDATE optimization_jobs SET status = 'completed' WHERE id = %s", (kept,))
        archive_old_jobs(runbook, 90, batch_rows=100, max_batches=10)
        moved = _where(runbook, [kept])
        _cleanup(runbook, mark)
    assert lost == (0, 0, 0)  # in neither table: the runbook deleted a row it had not copied
    assert moved == (0, 1, 0)
