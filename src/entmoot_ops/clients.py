"""Clients for one environment: timeouts on every call, and read-only unless a remediation asks otherwise.

Check mode is enforced at the client, not by convention: a botocore hook refuses AWS operations that are not
Describe/Get/List/Lookup/Filter, PostgreSQL sessions are ``default_transaction_read_only``, and the Redis client
refuses commands outside a read-only allow-list. All of these raise before anything leaves the process.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import psycopg
import redis
import requests

from entmoot_ops.config import Environment
from entmoot_ops.errors import DependencyError, ReadOnlyViolation
from entmoot_ops.secrets import masker, resolve, resolve_secret

READ_ONLY_AWS = re.compile(r"^(Describe|Get|List|Lookup|Filter|BatchGet)")
READ_ONLY_REDIS = frozenset(
    {"PING", "AUTH", "HELLO", "INFO", "CONFIG GET", "DBSIZE", "TTL", "PTTL", "EXISTS", "GET", "MGET", "TYPE",
     "CLIENT SETNAME", "CLIENT LIST", "CLIENT INFO", "SCAN", "MEMORY USAGE", "SLOWLOG GET", "LATENCY LATEST"}
)


def _refuse_writes(event_name: str, **_: Any) -> None:
    operation = event_name.rsplit(".", 1)[-1]
    if not READ_ONLY_AWS.match(operation):
        raise ReadOnlyViolation(f"check mode refused AWS {event_name.split('.')[1]}:{operation} (not a read)")


class ReadOnlyRedis(redis.Redis):
    def execute_command(self, *args: Any, **options: Any) -> Any:
        command = str(args[0]).upper()
        if command not in READ_ONLY_REDIS and f"{command} {str(args[1]).upper() if len(args) > 1 else ''}".strip() not in READ_ONLY_REDIS:
            raise ReadOnlyViolation(f"check mode refused Redis {command} (not a read)")
        return super().execute_command(*args, **options)


@dataclass
class Clients:
    """Lazily built clients for one environment. ``writable`` is for remediations only."""

    env: Environment
    writable: bool = False
    _cache: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def _session(self) -> boto3.session.Session:
        aws = self.env.aws
        keys = {}
        if aws.access_key_id and aws.secret_access_key:
            keys = {"aws_access_key_id": self.secret(aws.access_key_id, what="aws.access_key_id"),
                    "aws_secret_access_key": self.secret(aws.secret_access_key, what="aws.secret_access_key")}
        try:
            return boto3.session.Session(profile_name=aws.profile, region_name=aws.region, **keys)
        except botocore.exceptions.ProfileNotFound as exc:
            raise DependencyError("AWS", str(exc)) from None

    def aws(self, service: str) -> Any:
        key = f"aws:{service}"
        if key not in self._cache:
            timeouts = self.env.timeouts
            config = botocore.config.Config(
                connect_timeout=timeouts.connect_seconds,
                read_timeout=timeouts.read_seconds,
                retries={"max_attempts": timeouts.aws_max_attempts, "mode": "standard"},
            )
            endpoint = resolve(self.env.aws.endpoint_url, what="aws.endpoint_url") if self.env.aws.endpoint_url else None
            client = self._session.client(service, endpoint_url=endpoint, config=config)
            if not self.writable:
                client.meta.events.register("before-call.*.*", _refuse_writes)
            self._cache[key] = client
        return self._cache[key]

    def secret(self, reference: str, *, what: str) -> str:
        def fetch(arn: str) -> str:
            try:
                return self.aws("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
            except botocore.exceptions.BotoCoreError as exc:
                raise DependencyError("Secrets Manager", str(exc)) from None
            except botocore.exceptions.ClientError as exc:
                raise DependencyError("Secrets Manager", exc.response["Error"]["Message"]) from None

        return resolve_secret(reference, what=what, fetch_secret=fetch)

    def postgres(self, dsn_reference: str, *, name: str, autocommit: bool = True) -> psycopg.Connection:
        """A new session; in check mode it is read-only with statement and lock timeouts."""
        dsn = self.secret(dsn_reference, what=f"postgres {name} dsn")
        timeouts = self.env.timeouts
        statement_ms = int(timeouts.read_seconds * 1000)
        options = f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms} -c idle_in_transaction_session_timeout={statement_ms * 2}"
        if not self.writable:
            options += " -c default_transaction_read_only=on"
        try:
            return psycopg.connect(
                dsn,
                connect_timeout=max(1, round(timeouts.connect_seconds)),
                options=options,
                autocommit=autocommit,
                application_name="entmoot-ops" + ("-remediation" if self.writable else "-check"),
                # TCP keepalives make a SIGSTOPped server an error within the read timeout, not a hang.
                keepalives=1, keepalives_idle=1, keepalives_interval=1, keepalives_count=max(1, round(timeouts.read_seconds)),
                tcp_user_timeout=int(timeouts.read_seconds * 1000),
            )
        except psycopg.OperationalError as exc:
            raise DependencyError(f"PostgreSQL {name}", masker(str(exc).strip().splitlines()[0])) from None

    def redis(self) -> redis.Redis:
        if "redis" not in self._cache:
            settings = self.env.redis
            url = self.secret(settings.url, what="redis.url")
            password = self.secret(settings.password, what="redis.password") if settings.password else None
            factory = redis.Redis if self.writable else ReadOnlyRedis
            pool = redis.ConnectionPool.from_url(
                url,
                password=password,
                socket_connect_timeout=self.env.timeouts.connect_seconds,
                socket_timeout=self.env.timeouts.read_seconds,
                decode_responses=True,
            )
            self._cache["redis"] = factory(connection_pool=pool)
        return self._cache["redis"]

    def http(self) -> requests.Session:
        if "http" not in self._cache:
            session = requests.Session()
            auth = self.env.api.auth
            if auth.scheme != "none" and auth.secret:
                token = self.secret(auth.secret, what="api.auth.secret")
                session.headers[auth.header] = f"Bearer {token}" if auth.scheme == "bearer" else token
            self._cache["http"] = session
        return self._cache["http"]

    @property
    def http_timeout(self) -> tuple[float, float]:
        return (self.env.timeouts.connect_seconds, self.env.timeouts.read_seconds)

    @property
    def api_url(self) -> str:
        return resolve(self.env.api.url, what="api.url").rstrip("/")

    def close(self) -> None:
        for client in self._cache.values():
            close = getattr(client, "close", None)
            if close:
                close()
        self._cache.clear()
