"""What the sandbox's faults share: switching the API's faults, forgetting the traffic a fault produced, and
sessions that the statistics do not record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import contextlib

import psycopg

from entmoot_ops.sandbox.api_model import POOL_ERROR

if TYPE_CHECKING:
    from entmoot_ops.sandbox.core import Target


GIB = 1024**3


APP_ROLE = "entmoot_app"


def api_faults(sandbox: Target, **faults: Any) -> Callable[[], None]:
    sandbox.api_admin("/_sandbox/faults", {k: v for k, v in faults.items()})
    defaults = {"error_rate": 0.0, "latency_ms": 0.0, "degraded": False, "degraded_detail": "", "worker_paused": False, "versions": {},
                "auth_disabled": False, "storage_fallback": False, "task_rate": 0.0,
                "error_message": POOL_ERROR, "slow_paths": {}, "clock_skew_seconds": 0.0}
    return lambda: sandbox.api_admin("/_sandbox/faults", {k: defaults[k] for k in faults})


def forgetting_traffic(sandbox: Target, since: datetime, undo_api: Callable[[], None]) -> Callable[[], None]:
    """The undo of an API fault whose requests reached CloudWatch: stop the fault, let the requests in flight finish
    and publish them (one that began under the fault ends after it), then forget its datapoints (the load
    balancer's, and the fleet's CPU) and its log lines."""
    def undo() -> None:
        undo_api()
        sandbox.api_admin("/_sandbox/flush", {"drain": True})
        sandbox.forget_since(since)
    return undo


@contextlib.contextmanager
def unrecorded(sandbox: Target, role: str = "postgres", server: Any = None) -> Iterator[psycopg.Connection]:
    """A session of the sandbox's own making, as ``role`` (the objects it creates are that role's), whose statements
    pg_stat_statements does not record: a fault's setup is not the application's workload, and on a slow machine
    its bulk writes would otherwise read as the application's slow statements long after the fault is undone."""
    with psycopg.connect(sandbox.postgres.dsn("postgres", server=server), autocommit=True, connect_timeout=2) as conn:
        conn.execute("SET pg_stat_statements.track = 'none'")  # a superuser's setting: hence the session as postgres
        if role != "postgres":
            conn.execute(f"SET ROLE {role}")
        yield conn


def as_superuser(sandbox: Target, server: Any, sql: str) -> None:
    with unrecorded(sandbox, server=server) as conn:
        conn.execute(sql)


def application_session(sandbox: Target) -> psycopg.Connection:
    """A session of the application's role whose statements pg_stat_statements records: a fault's workload."""
    return psycopg.connect(sandbox.postgres.dsn(APP_ROLE), autocommit=True, connect_timeout=2)


def forget_statements(sandbox: Target, marker: str) -> None:
    """Remove from pg_stat_statements the statements a fault made the application run: the undo of its workload."""
    as_superuser(sandbox, sandbox.postgres.primary, "SELECT pg_stat_statements_reset(userid, dbid, queryid) FROM pg_stat_statements "
                                                  f"WHERE query LIKE '%{marker}%'")


def as_app(sandbox: Target, *statements: str) -> None:
    with unrecorded(sandbox, APP_ROLE) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.execute("SELECT pg_stat_force_next_flush()")  # the statistics views see it now, not within a second
