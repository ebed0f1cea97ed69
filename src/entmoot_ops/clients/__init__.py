"""Clients for one environment: timeouts on every call, and read-only unless a remediation asks otherwise.

Check mode is enforced at the client, not by convention: a botocore hook refuses AWS operations that are not
Describe/Get/List/Lookup/Filter, PostgreSQL sessions are ``default_transaction_read_only``, and the Redis client
refuses commands outside a read-only allow-list. All of these raise before anything leaves the process.
"""

from __future__ import annotations

import hashlib
import functools
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.loaders
import botocore.parsers
import botocore.session
import botocore.utils
import psycopg
import redis
import requests
import testinfra
from redis.backoff import NoBackoff
from redis.retry import Retry
from testinfra.host import Host

from entmoot_ops.breaker import breaker, measuring_fresh
from entmoot_ops.check import collecting, touching
from entmoot_ops.config import Environment
from entmoot_ops import boundary, iam
from entmoot_ops.errors import ConfigError, DependencyError
from entmoot_ops.iam import needs
from entmoot_ops.secrets import masker, resolve, resolve_secret

from entmoot_ops.clients.aws_guard import guard_aws, refuse_writes, touching_namespaces
from entmoot_ops.clients.aws_session import SOURCES, assume_role, botocore_session, credentials_from
from entmoot_ops.clients.connections import GuardedRedis, GuardedSession, ReadOnlyRedis, Sessions, postgres_answered
from entmoot_ops.clients.ssh import SSH_PERSIST_SECONDS, close_ssh_connections, open_connections

T = TypeVar("T")


class Resolved(Protocol):
    """What a run's preflight (:class:`entmoot_ops.preflight.Preflight`) hands the clients: the references it resolved,
    and an ERROR pointing at its line for one it could not. The preflight builds clients to resolve them: the clients
    take this narrow interface, not the preflight module, which sits a layer above them."""

    resolved: dict[str, str]  # reference -> value

    def raise_for(self, reference: str) -> None: ...


_SESSIONS: dict[tuple, botocore.session.Session] = {}  # per credential source


# Per session, service, region, endpoint and settings: environments in one account and region (staging and qa, blue
# and green) share a client. botocore's clients are thread-safe, and building one copies its session's hundreds of
# event handlers.
_AWS_CLIENTS: dict[tuple, Any] = {}
_SHARED = threading.Lock()  # around the two dicts above, never around a build
# What checks measuring at once build and share (a client, a pool) is built under one lock for the process: the builds
# are CPU (botocore's clients above all), and threads of ten environments building at once only contend for the
# interpreter's lock (a quarter more CPU, measured). Nothing that waits on the network is built under it: an
# environment's credentials are its own (Clients._credentials).
_BUILDING = threading.RLock()


@dataclass
class Clients:
    """Lazily built clients for one environment. ``writable`` is for remediations only."""

    env: Environment
    writable: bool = False
    # What the run's preflight resolved and found wrong; without it, references are resolved on use.
    preflight: Resolved | None = None
    _cache: dict[str, Any] = field(default_factory=dict)
    _readings: dict[Any, Any] = field(default_factory=dict)
    _reading: dict[Any, threading.RLock] = field(default_factory=dict)
    # The environment's botocore session, built once under its own lock: finding credentials may wait on the network
    # (SSO, a role to assume), and another environment's slow credentials hold nothing of this one.
    _credentials: threading.RLock = field(default_factory=threading.RLock)

    def remember(self, key: Any, measure: Callable[[], T]) -> T:
        """A reading several checks of one run share (one AWS call, not one per check, even when they ask at once);
        a re-check after a remediation measures fresh."""
        with _BUILDING:
            reading = self._reading.setdefault(key, threading.RLock())
        with reading:
            if measuring_fresh() or key not in self._readings:
                with collecting() as reached:
                    self._readings[key] = (measure(), reached)
            value, reached = self._readings[key]
        reached.replay()  # a check that shares a reading depends on what it came from, and needs what it called
        return value

    @property
    def _session(self) -> botocore.session.Session:
        with self._credentials:
            return self._built_session

    @functools.cached_property
    def _built_session(self) -> botocore.session.Session:
        """botocore's session, not boto3's: boto3 would add its S3 transfer machinery to every run's start-up."""
        if self.preflight is not None:
            self.preflight.raise_for("aws.credentials")
        aws = self.env.aws
        # By the key itself, not its reference: the same env:NAME may hold another key later in the process.
        access_key = self.secret(aws.access_key_id, what="aws.access_key_id") if aws.access_key_id else None
        endpoint = self.endpoint(aws.endpoint_url, what="aws.endpoint_url") if aws.endpoint_url else None
        key = (aws.credential_source, aws.profile, access_key, aws.role_arn, endpoint)
        with _SHARED:
            known = _SESSIONS.get(key)
        if known is not None:  # the preflight's: its configuration and credentials are read once a run
            return known
        session = botocore_session(aws.profile)
        keys = (access_key, self.secret(aws.secret_access_key, what="aws.secret_access_key")) if access_key else None
        credentials_from(session, aws.credential_source, keys)
        try:
            session.get_scoped_config()  # an unknown profile is said here, once, not by the first call
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigError(f"aws.profile: {exc}", fix="name a profile that exists in ~/.aws/config, or unset it") from None
        if aws.role_arn:
            assume_role(session, aws.role_arn, aws.region, endpoint)
        with _SHARED:
            return _SESSIONS.setdefault(key, session)

    def aws_credentials(self) -> str:
        """Where the environment's credential source found credentials (env, sso, assume-role, iam-role, ...); a
        ConfigError when it finds none. An assumed role is assumed here, so that a role that cannot be is said once."""
        found = self._session.get_credentials()
        if found is None:
            source = self.env.aws.credential_source
            raise ConfigError(f"AWS credentials: none found {SOURCES[source]}",
                              fix='on an EC2 instance or an ECS task set [aws] credentials = "instance"; elsewhere set AWS_PROFILE '
                                  "or aws.profile, run `aws sso login`, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        found.get_frozen_credentials()
        return found.method

    def aws(self, service: str) -> Any:
        touching("traffic" if service == "logs" else "aws")
        key = f"aws:{service}"
        if key in self._cache:
            return self._cache[key]
        session = self._session  # before the build's lock: it may wait on the network
        return self._built(key, lambda: self._build_aws(service, session))

    def _built(self, key: str, build: Callable[[], T]) -> T:
        with _BUILDING:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def _build_aws(self, service: str, session: botocore.session.Session) -> Any:
        timeouts = self.env.timeouts
        endpoint = self.endpoint(self.env.aws.endpoint_url, what="aws.endpoint_url") if self.env.aws.endpoint_url else None
        shared = (id(session), service, self.env.aws.region, endpoint, timeouts.connect_seconds, timeouts.read_seconds,
                  timeouts.aws_max_attempts, self.writable)
        with _SHARED:
            known = _AWS_CLIENTS.get(shared)
        if known is None:
            config = botocore.config.Config(
                max_pool_connections=self.env.concurrency.reads,
                connect_timeout=timeouts.connect_seconds,
                read_timeout=timeouts.read_seconds,
                # total_max_attempts counts the first attempt; botocore's max_attempts would count only the retries.
                retries={"total_max_attempts": timeouts.aws_max_attempts, "mode": "standard"},
            )
            client = session.create_client(service, region_name=self.env.aws.region, endpoint_url=endpoint, config=config)
            dependency = f"AWS {client.meta.service_model.service_id}"
            guard_aws(client, dependency)
            boundary.guard_calls(client, dependency)
            if not self.writable:
                client.meta.events.register("before-call.*.*", refuse_writes)
            client.meta.events.register("before-parameter-build.cloudwatch.*", touching_namespaces)
            with _SHARED:
                known = _AWS_CLIENTS.setdefault(shared, client)
        return known

    def endpoint(self, reference: str, *, what: str) -> str:
        """An endpoint written out or referenced (env:NAME): not secret, but resolved like a secret."""
        if self.preflight is not None and reference in self.preflight.resolved:
            return self.preflight.resolved[reference]
        if self.preflight is not None:
            self.preflight.raise_for(reference)
        return resolve(reference, what=what)

    @needs("secretsmanager:GetSecretValue", resources=iam.SECRETS)
    def secret(self, reference: str, *, what: str) -> str:
        if self.preflight is not None and reference in self.preflight.resolved:
            return self.preflight.resolved[reference]
        if self.preflight is not None:
            self.preflight.raise_for(reference)

        def fetch(arn: str) -> str:
            with boundary.measuring("AWS Secrets Manager"):
                return self.aws("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]

        return resolve_secret(reference, what=what, fetch_secret=fetch)

    def postgres(self, dsn_reference: str, *, name: str, autocommit: bool = True) -> psycopg.Connection:
        """A session; in check mode it is read-only with statement and lock timeouts, and the run keeps a few per
        database ([concurrency] postgres_sessions) that every check shares (a connection costs the server a process).
        It is handed out as a context manager whose end gives it back, open; a broken one is replaced. A
        remediation's session is its own, and closed after use."""
        touching("primary" if name == "primary" else "replica")
        if self.writable or not autocommit:
            return self._connect(dsn_reference, name=name, autocommit=autocommit)
        timeouts = self.env.timeouts
        sessions = self._built(f"postgres:{dsn_reference}", lambda: Sessions(
            lambda: self._connect(dsn_reference, name=name, autocommit=True), self.env.concurrency.postgres_sessions,
            name=name, wait_seconds=3 * (timeouts.connect_seconds + timeouts.read_seconds)))
        return sessions.take()

    def _connect(self, dsn_reference: str, *, name: str, autocommit: bool) -> psycopg.Connection:
        dsn = self.secret(dsn_reference, what=f"postgres {name} dsn")
        try:
            params = psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"postgres {name} dsn: not a valid connection string ({masker(str(exc))})") from None
        endpoint = f"{params.get('host') or params.get('hostaddr') or 'localhost'}:{params.get('port') or 5432}"
        timeouts = self.env.timeouts
        statement_ms = int(timeouts.read_seconds * 1000)
        options = f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms} -c idle_in_transaction_session_timeout={statement_ms * 2}"
        if not self.writable:
            options += " -c default_transaction_read_only=on"
        try:
            with breaker.call(endpoint, f"PostgreSQL {name}", (psycopg.OperationalError,), answered=postgres_answered):
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
            raise DependencyError(f"PostgreSQL {name}", masker(str(exc).strip().splitlines()[0]),
                                  reachable=postgres_answered(exc)) from None

    def redis(self, *, replica: bool = False) -> redis.Redis:
        """The Redis of the environment; ``replica=True``: its read replica where one is configured (a scan there
        costs the primary nothing), else the primary."""
        touching("redis")
        settings = self.env.redis
        reference, key = (settings.replica_url, "redis-replica") if replica and settings.replica_url else (settings.url, "redis")
        return self._built(key, lambda: self._build_redis(reference, key))

    def _build_redis(self, reference: str, key: str) -> redis.Redis:
        settings = self.env.redis
        url = self.secret(reference, what="redis.replica_url" if key == "redis-replica" else "redis.url")
        password = self.secret(settings.password, what="redis.password") if settings.password else None
        # One attempt: redis-py's default of 3 retries would make a frozen Redis cost four read timeouts.
        once = Retry(NoBackoff(), 0)
        # Bounded, and a command beyond the bound waits for a connection (redis-py's plain pool would refuse it).
        pool = redis.BlockingConnectionPool.from_url(
            url,
            password=password,
            socket_connect_timeout=self.env.timeouts.connect_seconds,
            socket_timeout=self.env.timeouts.read_seconds,
            decode_responses=True,
            retry=once,
            max_connections=self.env.concurrency.reads,
            timeout=self.env.timeouts.read_seconds,
        )
        client = (GuardedRedis if self.writable else ReadOnlyRedis)(connection_pool=pool, retry=once)
        client.endpoint = f"{pool.connection_kwargs.get('host', 'localhost')}:{pool.connection_kwargs.get('port', 6379)}"
        return client

    def http(self, *, authenticated: bool = True) -> requests.Session:
        """The API session; ``authenticated=False`` sends no credential (to prove the API demands one)."""
        touching("api")
        key = "http" if authenticated else "http-anonymous"
        return self._built(key, lambda: self._build_http(authenticated))

    def _build_http(self, authenticated: bool) -> requests.Session:
        session = GuardedSession()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=self.env.concurrency.reads)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        auth = self.env.api.auth
        if authenticated and auth.scheme != "none" and auth.secret:
            token = self.secret(auth.secret, what="api.auth.secret")
            session.headers[auth.header] = f"Bearer {token}" if auth.scheme == "bearer" else token
        return session

    def host(self, url: str) -> Host:
        """A testinfra host (``local://``, ``ssh://user@bastion``, ``docker://...``) with the environment's SSH
        settings. SSH never prompts (BatchMode), and a session that stops answering ends after its keep-alives; one
        connection per host serves the run's commands (ControlMaster) and closes soon after it."""
        key = f"host:{url}"
        return self._built(key, lambda: self._build_host(url))

    def _build_host(self, url: str) -> Host:
        settings = self.env.hosts
        options: dict[str, Any] = {}
        if settings.ssh_config:
            options["ssh_config"] = os.path.expanduser(self.endpoint(settings.ssh_config, what="hosts.ssh_config"))
        if settings.ssh_identity_file:
            options["ssh_identity_file"] = os.path.expanduser(self.endpoint(settings.ssh_identity_file, what="hosts.ssh_identity_file"))
        if url.startswith(("ssh://", "paramiko://")):
            control = Path(tempfile.gettempdir()) / f"entmoot-ssh-{os.getuid()}"
            control.mkdir(mode=0o700, exist_ok=True)
            # One connection per host as this configuration reaches it: the same URL through another ssh_config
            # is another host.
            identity = f"{url}|{options.get('ssh_config')}|{options.get('ssh_identity_file')}"
            options.update(timeout=max(1, round(self.env.timeouts.connect_seconds)), controlpersist=SSH_PERSIST_SECONDS,
                           controlpath=str(control / hashlib.sha256(identity.encode()).hexdigest()[:20]),
                           ssh_extra_args="-o BatchMode=yes -o ServerAliveInterval=2 -o ServerAliveCountMax=2")
        host = testinfra.get_host(url, **options)
        if "controlpath" in options:
            open_connections[options["controlpath"]] = host
        return host

    @property
    def http_timeout(self) -> tuple[float, float]:
        return (self.env.timeouts.connect_seconds, self.env.timeouts.read_seconds)

    @property
    def api_url(self) -> str:
        return self.endpoint(self.env.api.url, what="api.url").rstrip("/")

    def close(self) -> None:
        with _BUILDING:  # a check still measuring (after -x) builds nothing new meanwhile
            built, self._cache = dict(self._cache), {}
        for key, client in built.items():
            # SSH connections end with the run (close_ssh_connections), AWS clients with the process (shared)
            close = None if isinstance(client, Host) or key.startswith("aws:") else getattr(client, "close", None)
            if close:
                close()


__all__ = ["SOURCES", "Clients", "Resolved", "close_ssh_connections"]
