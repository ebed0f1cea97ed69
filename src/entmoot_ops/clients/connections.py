"""Redis and HTTP clients that go through the circuit breaker (Redis read-only in check mode), and a PostgreSQL
connection kept open for the run."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
import requests

from entmoot_ops.breaker import breaker
from entmoot_ops.errors import ReadOnlyViolation


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


class KeptConnection:
    """A shared session as ``with clients.postgres(...) as session`` expects it, left open at the block's end."""

    def __init__(self, connection: psycopg.Connection):
        self._connection = connection

    def __enter__(self) -> psycopg.Connection:
        return self._connection

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)
