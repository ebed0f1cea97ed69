"""Redis and HTTP clients that go through the circuit breaker (Redis read-only in check mode), and the PostgreSQL
sessions kept open for the run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
import requests

from entmoot_ops.breaker import breaker
from entmoot_ops.errors import DependencyError, ReadOnlyViolation


READ_ONLY_REDIS = frozenset(
    {"PING", "AUTH", "HELLO", "INFO", "CONFIG GET", "DBSIZE", "TTL", "PTTL", "EXISTS", "GET", "MGET", "TYPE",
     "CLIENT SETNAME", "CLIENT LIST", "CLIENT INFO", "SCAN", "MEMORY USAGE", "SLOWLOG GET", "LATENCY LATEST",
     "CLUSTER INFO"}
)


REDIS_ANSWERS = (redis.AuthenticationError, redis.exceptions.AuthorizationError)


def postgres_answered(error: BaseException) -> bool:
    return "FATAL" in str(error) or "SSL" in str(error)


class GuardedRedis(redis.Redis):
    """Every command goes through the endpoint's circuit breaker."""

    endpoint = "redis"

    def execute_command(self, *args: Any, **options: Any) -> Any:
        with breaker.call(self.endpoint, "Redis", (redis.ConnectionError, redis.TimeoutError),
                          answered=lambda e: isinstance(e, REDIS_ANSWERS)):
            return super().execute_command(*args, **options)


class ReadOnlyRedis(GuardedRedis):
    def execute_command(self, *args: Any, **options: Any) -> Any:
        command = str(args[0]).upper()
        if command not in READ_ONLY_REDIS and f"{command} {str(args[1]).upper() if len(args) > 1 else ''}".strip() not in READ_ONLY_REDIS:
            raise ReadOnlyViolation(f"check mode refused Redis {command} (not a read)")
        return super().execute_command(*args, **options)


class GuardedSession(requests.Session):
    """HTTP through the API endpoint's circuit breaker."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(url)
        with breaker.call(f"{parts.scheme}://{parts.netloc}", "API", (requests.Timeout, requests.ConnectionError),
                          answered=lambda e: isinstance(e, requests.exceptions.SSLError)):
            return super().request(method, url, *args, **kwargs)


class Sessions:
    """The sessions to one database as one role that a run keeps: a check takes an idle one, or opens one while fewer
    than ``size`` are open (checks measuring at once each have their own), or waits for one to be given back. A
    session given back broken is closed, and the next check opens another.

    Not psycopg_pool: its connections are opened by a background worker, so a check that cannot connect would wait
    for the pool's whole timeout and learn only that none came, where this one hears the server's own refusal at once.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection], size: int, *, name: str, wait_seconds: float):
        self._connect = connect
        self._size = size
        self._name, self._wait_seconds = name, wait_seconds
        self._idle: list[psycopg.Connection] = []
        self._open = 0
        self._closed = False
        self._changed = threading.Condition()

    def take(self) -> KeptConnection:
        with self._changed:
            if not self._changed.wait_for(lambda: self._idle or self._open < self._size, timeout=self._wait_seconds):
                raise DependencyError(f"PostgreSQL {self._name}", f"none of the run's {self._size} sessions was given back "
                                      f"within {self._wait_seconds:g} s", reachable=True,
                                      fix="raise [concurrency] postgres_sessions, or look for a check that keeps one")
            if self._idle:
                return KeptConnection(self._idle.pop(), self)
            self._open += 1
        try:
            return KeptConnection(self._connect(), self)
        except BaseException:
            self._gone()
            raise

    def give_back(self, connection: psycopg.Connection) -> None:
        with self._changed:
            kept = not (self._closed or connection.closed or connection.broken
                        or connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)
            if kept:
                self._idle.append(connection)
            else:
                self._open -= 1
            self._changed.notify()
        if not kept:
            connection.close()

    def _gone(self) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify()

    def close(self) -> None:
        """The run ends: the idle sessions are closed now, those still in use when they are given back."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for connection in idle:
            connection.close()


class KeptConnection:
    """A session of :class:`Sessions` as ``with clients.postgres(...) as session`` expects it: the block's end (or
    ``close()``) gives it back, open, for the next check."""

    def __init__(self, connection: psycopg.Connection, sessions: Sessions):
        self._connection: psycopg.Connection | None = connection
        self._sessions = sessions

    def __enter__(self) -> psycopg.Connection:
        assert self._connection is not None, "a session given back is not used again"
        return self._connection

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._sessions.give_back(connection)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)
