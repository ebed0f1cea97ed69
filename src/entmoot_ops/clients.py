"""Clients for one environment: timeouts on every call, and read-only unless a remediation asks otherwise.

Check mode is enforced at the client, not by convention: a botocore hook refuses AWS operations that are not
Describe/Get/List/Lookup/Filter, PostgreSQL sessions are ``default_transaction_read_only``, and the Redis client
refuses commands outside a read-only allow-list. All of these raise before anything leaves the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import functools
import gzip
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

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
from entmoot_ops.check import calling, collecting, touching
from entmoot_ops.config import Environment
from entmoot_ops import boundary, iam
from entmoot_ops.aws_conventions import IAM_PREFIX
from entmoot_ops.errors import ConfigError, DependencyError, ReadOnlyViolation
from entmoot_ops.iam import needs
from entmoot_ops.secrets import masker, resolve, resolve_secret

T = TypeVar("T")


class Resolved(Protocol):
    """What a run's preflight (:class:`entmoot_ops.preflight.Preflight`) hands the clients: the references it resolved,
    and an ERROR pointing at its line for one it could not. The preflight builds clients to resolve them: the clients
    take this narrow interface, not the preflight module, which sits a layer above them."""

    resolved: dict[str, str]  # reference -> value

    def raise_for(self, reference: str) -> None: ...


class _ModelFiles(botocore.loaders.JSONFileLoader):
    """botocore's model files, decoded into plain dicts (which keep their order): botocore's own decoding builds an
    OrderedDict through a Python hook, which doubles the time of a process's first clients."""

    def load_file(self, file_path: str) -> Any:
        for suffix, opener in ((".json", open), (".json.gz", gzip.open)):
            if os.path.isfile(file_path + suffix):
                with opener(file_path + suffix, "rb") as data:
                    return json.loads(data.read())
        return None


# One loader per process: a service's model is parsed once, whatever the number of environments (one botocore
# session each) a run checks.
_LOADER = botocore.loaders.Loader(file_loader=_ModelFiles())


def _timestamp(value: Any) -> datetime:
    """botocore's own parser builds a dateutil tzlocal and runs dateutil's parser for each timestamp: a day of
    one-minute datapoints is thousands of them."""
    if not isinstance(value, str):
        return datetime.fromtimestamp(value, UTC)
    with contextlib.suppress(ValueError):
        return datetime.fromtimestamp(float(value), UTC)
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(value)
    return botocore.utils.parse_timestamp(value)  # RFC 822 and the other forms AWS writes


_PARSERS = botocore.parsers.ResponseParserFactory()
_PARSERS.set_parser_defaults(timestamp_parser=_timestamp)


def _botocore_session(profile: str | None = None) -> botocore.session.Session:
    """botocore's session, with the process's loader and timestamp parser."""
    session = botocore.session.Session(profile=profile)
    session.register_component("data_loader", _LOADER)
    session.register_component("response_parser_factory", _PARSERS)
    return session


# botocore's providers that ask the ECS container credentials endpoint and the EC2 instance metadata service.
INSTANCE_PROVIDERS = ("container-role", "iam-role")
ENVIRONMENT_PROVIDERS = ("env", "assume-role-with-web-identity")
SOURCES = {"keys": "in aws.access_key_id and aws.secret_access_key", "profile": "in aws.profile",
           "environment": "in the environment (AWS_ACCESS_KEY_ID, AWS_WEB_IDENTITY_TOKEN_FILE)",
           "chain": "in the environment, a profile, an SSO session or credential_process",
           "instance": "from the instance's or the ECS task's role"}


def _credentials_from(session: botocore.session.Session, source: str, keys: tuple[str, str] | None) -> None:
    """Keep only the providers of the environment's credential source: the instance metadata service is asked only
    where the environment says it runs on an instance."""
    resolver = session.get_component("credential_provider")
    if keys is not None:
        resolver.providers = [_Given(botocore.credentials.Credentials(*keys, method="explicit"))]
    elif source == "instance":
        resolver.providers = [p for p in resolver.providers if p.METHOD in INSTANCE_PROVIDERS]
    elif source == "environment":
        resolver.providers = [p for p in resolver.providers if p.METHOD in ENVIRONMENT_PROVIDERS]
    else:
        resolver.providers = [p for p in resolver.providers if p.METHOD not in INSTANCE_PROVIDERS]


class _Given(botocore.credentials.CredentialProvider):
    """Credentials the environment names (its keys, or the role assumed with them)."""

    METHOD = "explicit"

    def __init__(self, credentials: botocore.credentials.Credentials):
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.Credentials:
        return self._credentials


def _assume_role(session: botocore.session.Session, role_arn: str, region: str, endpoint: str | None) -> None:
    """The session's credentials become the role's, assumed with the source's own and refreshed before they expire
    (botocore's fetcher, as a profile's role_arn is)."""
    resolver = session.get_component("credential_provider")
    base = resolver.load_credentials()
    if base is None:  # aws_credentials says so
        return
    fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
        client_creator=functools.partial(session.create_client, region_name=region, endpoint_url=endpoint),
        source_credentials=base, role_arn=role_arn, extra_args={"RoleSessionName": "entmoot-ops"})
    resolver.providers = [_Given(botocore.credentials.DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials))]


def parse_models(services: Iterable[str]) -> None:
    """Parse these services' models into the process's loader, as their first clients would (a client each, made and
    dropped: no call, no credentials read): a process forked afterwards starts with them parsed."""
    session = _botocore_session()
    for service in services:
        session.create_client(service, region_name="us-east-1", aws_access_key_id="unused", aws_secret_access_key="unused")


SSH_PERSIST_SECONDS = 10  # an SSH connection outlives the run by this much: the next command reuses it meanwhile
# This process's SSH connections by control path: shared by every environment that reaches a host the same way, so
# one environment's end does not close the connection the next one is about to use.
_ssh_connections: dict[str, Host] = {}
_SESSIONS: dict[tuple, botocore.session.Session] = {}  # per credential source
# Per session, service, region, endpoint and settings: environments in one account and region (staging and qa, blue
# and green) share a client. botocore's clients are thread-safe, and building one copies its session's hundreds of
# event handlers.
_AWS_CLIENTS: dict[tuple, Any] = {}

# A Logs Insights query is a read that runs on the server: starting and stopping one changes no resource.
# IAM's policy simulator reads what a principal may do.
READ_ONLY_AWS = re.compile(r"^(Describe|Get|List|Lookup|Filter|BatchGet|StartQuery$|StopQuery$|SimulatePrincipalPolicy$)")
READ_ONLY_REDIS = frozenset(
    {"PING", "AUTH", "HELLO", "INFO", "CONFIG GET", "DBSIZE", "TTL", "PTTL", "EXISTS", "GET", "MGET", "TYPE",
     "CLIENT SETNAME", "CLIENT LIST", "CLIENT INFO", "SCAN", "MEMORY USAGE", "SLOWLOG GET", "LATENCY LATEST",
     "CLUSTER INFO"}
)


def _refuse_writes(event_name: str, **_: Any) -> None:
    operation = event_name.rsplit(".", 1)[-1]
    if not READ_ONLY_AWS.match(operation):
        raise ReadOnlyViolation(f"check mode refused AWS {event_name.split('.')[1]}:{operation} (not a read)")


# Calls that got no answer open the endpoint's circuit; these are answers (a wrong password, a TLS mismatch).
AWS_NO_ANSWER = (botocore.exceptions.ConnectionError, botocore.exceptions.ReadTimeoutError,
                 botocore.exceptions.ConnectionClosedError)
REDIS_ANSWERS = (redis.AuthenticationError, redis.exceptions.AuthorizationError)


def _postgres_answered(error: BaseException) -> bool:
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


def close_ssh_connections() -> None:
    """The run's shared SSH connections end with the run, not SSH_PERSIST_SECONDS later. ``-O stop``, not ``exit``:
    a command another process (an xdist sibling) is running through the same connection finishes first."""
    while _ssh_connections:
        _, host = _ssh_connections.popitem()
        backend = host.backend
        command = ["ssh", *(["-F", backend.ssh_config] if backend.ssh_config else []), "-o", f"ControlPath={backend.controlpath}",
                   "-O", "stop", backend.host.name]
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(command, capture_output=True, timeout=5)


class GuardedSession(requests.Session):
    """HTTP through the API endpoint's circuit breaker."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(url)
        with breaker.call(f"{parts.scheme}://{parts.netloc}", "API", (requests.Timeout, requests.ConnectionError),
                          answered=lambda e: isinstance(e, requests.exceptions.SSLError)):
            return super().request(method, url, *args, **kwargs)


_ERROR_CODE = re.compile(r"<Code>\s*([^<\s]+)\s*</Code>")
_ERROR_MESSAGE = re.compile(r"<Message>\s*([^<]*?)\s*</Message>", re.S)


def iam_action(operation_model: Any) -> str:
    """``logs:StartQuery``: the IAM action an AWS operation is authorised as."""
    signing = operation_model.service_model.signing_name
    return f"{IAM_PREFIX.get(signing, signing)}:{operation_model.name}"


def _error_from_body(body: bytes) -> tuple[str, str]:
    """Code and message of an error body in whatever shape it came: XML (query protocols, and moto's denials
    even to JSON clients), JSON (``__type``/``code``, ``message``), or neither (a proxy's HTML, nothing)."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        if isinstance(data, dict):
            code = str(data.get("__type") or data.get("code") or data.get("Code") or "").rsplit("#", 1)[-1]
            return code, str(data.get("message") or data.get("Message") or "")
    code, message = _ERROR_CODE.search(text), _ERROR_MESSAGE.search(text)
    if code or message:
        return (code.group(1) if code else ""), (" ".join(message.group(1).split()) if message else "")
    if text.startswith("<"):
        return "", f"not an AWS error body ({'HTML' if '<html' in text[:200].lower() else 'XML'} of {len(text)} characters)"
    return "", ""


def _normalise_error(http_response: Any, parsed: dict, model: Any, **_: Any) -> None:
    """Give every error answer a code, a message and the IAM action, whatever protocol its body came in: botocore
    reports an XML denial to a JSON client as code ``403`` with the raw XML as its message."""
    status = http_response.status_code
    if status < 300:
        return
    error = parsed.setdefault("Error", {})
    code = str(error.get("Code") or "")
    if not code or code.isdigit() or str(error.get("Message", "")).lstrip().startswith("<"):
        found_code, found_message = _error_from_body(http_response.content or b"")
        error["Code"] = found_code or ("AccessDenied" if status == 403 else f"HTTP {status}")
        error["Message"] = found_message
        error["Unexpected"] = not found_code and status != 403  # not an AWS error at all: a proxy, a web page
    error["Action"] = iam_action(model)


# A CloudWatch metric depends on what it measures: the load balancer's on the API's traffic, a node's on Redis...
NAMESPACE_DEPENDENCY = {"AWS/ApplicationELB": "traffic", "AWS/ECS": "api", "AWS/RDS": "primary", "AWS/ElastiCache": "redis"}


def _touching_namespaces(params: dict, **_: Any) -> None:
    queries = params.get("MetricDataQueries") or []
    namespaces = {params.get("Namespace")} | {q.get("MetricStat", {}).get("Metric", {}).get("Namespace") for q in queries}
    touching(*(NAMESPACE_DEPENDENCY[n] for n in namespaces if n in NAMESPACE_DEPENDENCY))


def _guard_aws(client: Any, dependency: str) -> None:
    endpoint = urlsplit(client.meta.endpoint_url).netloc
    # AWS throttles per API, and several APIs may share one endpoint (a proxy, the sandbox): its own circuit.
    api = f"{endpoint} {client.meta.service_model.signing_name}"

    def before(context: dict, model: Any, **_: Any) -> None:
        calling(iam_action(model))
        breaker.guard(endpoint, dependency)
        breaker.guard(api, dependency)
        context["entmoot_started"] = time.monotonic()
        boundary.current_action.set(iam_action(model))

    def failed(exception: BaseException, context: dict, **_: Any) -> None:
        if isinstance(exception, AWS_NO_ANSWER):
            breaker.trip(endpoint, dependency, time.monotonic() - context.get("entmoot_started", time.monotonic()),
                         type(exception).__name__)

    def answered(parsed: dict, context: dict, **_: Any) -> None:
        breaker.close(endpoint)
        error = parsed.get("Error") or {}
        if boundary.throttled(str(error.get("Code") or ""), str(error.get("Message") or "")):
            # botocore's retries (standard mode, aws_max_attempts) were spent: the rest of the run would only wait.
            attempts = parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            breaker.trip(api, dependency, time.monotonic() - context.get("entmoot_started", time.monotonic()),
                         f"{error['Code']} after {attempts} attempts", throttled=True)
        elif not error:
            breaker.close(api)

    def refuse_unreadable(http_response: Any, model: Any, **_: Any) -> None:
        # botocore reads an empty JSON body as {} and one it cannot decode as nothing at all: a proxy's empty 200, or
        # an answer cut short, would read as "no alarms", "no services". XML and CBOR that do not decode raise.
        output = model.output_shape
        if http_response.status_code >= 300 or output is None or all("location" in m.serialization for m in output.members.values()):
            return
        body = http_response.content
        problem = "no body" if not body else None
        if body[:1] in (b"{", b"["):
            try:
                json.loads(body)
            except ValueError:
                problem = f"{len(body)} bytes of JSON that do not decode (cut short?)"
        if problem:
            raise DependencyError(dependency, f"unexpected answer from {dependency} {iam_action(model)}: HTTP "
                                              f"{http_response.status_code} with {problem}", reachable=True, fix=boundary.ENDPOINT_HINT)

    client.meta.events.register("before-call.*.*", before)
    client.meta.events.register("after-call-error.*.*", failed)
    client.meta.events.register("after-call.*.*", refuse_unreadable)
    client.meta.events.register("after-call.*.*", _normalise_error)
    client.meta.events.register("after-call.*.*", answered)


class _Kept:
    """A shared session as ``with clients.postgres(...) as session`` expects it, left open at the block's end."""

    def __init__(self, connection: psycopg.Connection):
        self._connection = connection

    def __enter__(self) -> psycopg.Connection:
        return self._connection

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


@dataclass
class Clients:
    """Lazily built clients for one environment. ``writable`` is for remediations only."""

    env: Environment
    writable: bool = False
    # What the run's preflight resolved and found wrong; without it, references are resolved on use.
    preflight: Resolved | None = None
    _cache: dict[str, Any] = field(default_factory=dict)
    _readings: dict[Any, Any] = field(default_factory=dict)

    def remember(self, key: Any, measure: Callable[[], T]) -> T:
        """A reading several checks of one run share (one AWS call, not one per check); a re-check after a
        remediation measures fresh."""
        if measuring_fresh() or key not in self._readings:
            with collecting() as reached:
                self._readings[key] = (measure(), reached)
        value, reached = self._readings[key]
        reached.replay()  # a check that shares a reading depends on what it came from, and needs what it called
        return value

    @functools.cached_property
    def _session(self) -> botocore.session.Session:
        """botocore's session, not boto3's: boto3 would add its S3 transfer machinery to every run's start-up."""
        if self.preflight is not None:
            self.preflight.raise_for("aws.credentials")
        aws = self.env.aws
        # By the key itself, not its reference: the same env:NAME may hold another key later in the process.
        access_key = self.secret(aws.access_key_id, what="aws.access_key_id") if aws.access_key_id else None
        endpoint = self.endpoint(aws.endpoint_url, what="aws.endpoint_url") if aws.endpoint_url else None
        key = (aws.credential_source, aws.profile, access_key, aws.role_arn, endpoint)
        if key in _SESSIONS:  # the preflight's: its configuration and credentials are read once a run
            return _SESSIONS[key]
        session = _botocore_session(aws.profile)
        keys = (access_key, self.secret(aws.secret_access_key, what="aws.secret_access_key")) if access_key else None
        _credentials_from(session, aws.credential_source, keys)
        try:
            session.get_scoped_config()  # an unknown profile is said here, once, not by the first call
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigError(f"aws.profile: {exc}", fix="name a profile that exists in ~/.aws/config, or unset it") from None
        if aws.role_arn:
            _assume_role(session, aws.role_arn, aws.region, endpoint)
        _SESSIONS[key] = session
        return session

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
        if key not in self._cache:
            timeouts = self.env.timeouts
            endpoint = self.endpoint(self.env.aws.endpoint_url, what="aws.endpoint_url") if self.env.aws.endpoint_url else None
            shared = (id(self._session), service, self.env.aws.region, endpoint, timeouts.connect_seconds, timeouts.read_seconds,
                      timeouts.aws_max_attempts, self.writable)
            if shared not in _AWS_CLIENTS:
                config = botocore.config.Config(
                    connect_timeout=timeouts.connect_seconds,
                    read_timeout=timeouts.read_seconds,
                    # total_max_attempts counts the first attempt; botocore's max_attempts would count only the retries.
                    retries={"total_max_attempts": timeouts.aws_max_attempts, "mode": "standard"},
                )
                client = self._session.create_client(service, region_name=self.env.aws.region, endpoint_url=endpoint, config=config)
                dependency = f"AWS {client.meta.service_model.service_id}"
                _guard_aws(client, dependency)
                boundary.guard_calls(client, dependency)
                if not self.writable:
                    client.meta.events.register("before-call.*.*", _refuse_writes)
                client.meta.events.register("before-parameter-build.cloudwatch.*", _touching_namespaces)
                _AWS_CLIENTS[shared] = client
            self._cache[key] = _AWS_CLIENTS[shared]
        return self._cache[key]

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
        """A session; in check mode it is read-only with statement and lock timeouts, and one per database serves
        every check of the run (a connection costs the server a process: six a run, ten environments, sixty). It
        is handed out as a context manager that leaves it open; a broken one is replaced. A remediation's session
        is its own, and closed after use."""
        touching("primary" if name == "primary" else "replica")
        if self.writable or not autocommit:
            return self._connect(dsn_reference, name=name, autocommit=autocommit)
        key = f"postgres:{dsn_reference}"
        shared = self._cache.get(key)
        if shared is None or shared.closed or shared.broken:
            shared = self._cache[key] = self._connect(dsn_reference, name=name, autocommit=True)
        return _Kept(shared)

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
            with breaker.call(endpoint, f"PostgreSQL {name}", (psycopg.OperationalError,), answered=_postgres_answered):
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
                                  reachable=_postgres_answered(exc)) from None

    def redis(self, *, replica: bool = False) -> redis.Redis:
        """The Redis of the environment; ``replica=True``: its read replica where one is configured (a scan there
        costs the primary nothing), else the primary."""
        touching("redis")
        settings = self.env.redis
        reference, key = (settings.replica_url, "redis-replica") if replica and settings.replica_url else (settings.url, "redis")
        if key not in self._cache:
            url = self.secret(reference, what="redis.replica_url" if key == "redis-replica" else "redis.url")
            password = self.secret(settings.password, what="redis.password") if settings.password else None
            # One attempt: redis-py's default of 3 retries would make a frozen Redis cost four read timeouts.
            once = Retry(NoBackoff(), 0)
            pool = redis.ConnectionPool.from_url(
                url,
                password=password,
                socket_connect_timeout=self.env.timeouts.connect_seconds,
                socket_timeout=self.env.timeouts.read_seconds,
                decode_responses=True,
                retry=once,
            )
            client = (GuardedRedis if self.writable else ReadOnlyRedis)(connection_pool=pool, retry=once)
            client.endpoint = f"{pool.connection_kwargs.get('host', 'localhost')}:{pool.connection_kwargs.get('port', 6379)}"
            self._cache[key] = client
        return self._cache[key]

    def http(self, *, authenticated: bool = True) -> requests.Session:
        """The API session; ``authenticated=False`` sends no credential (to prove the API demands one)."""
        touching("api")
        key = "http" if authenticated else "http-anonymous"
        if key not in self._cache:
            session = GuardedSession()
            auth = self.env.api.auth
            if authenticated and auth.scheme != "none" and auth.secret:
                token = self.secret(auth.secret, what="api.auth.secret")
                session.headers[auth.header] = f"Bearer {token}" if auth.scheme == "bearer" else token
            self._cache[key] = session
        return self._cache[key]

    def host(self, url: str) -> Host:
        """A testinfra host (``local://``, ``ssh://user@bastion``, ``docker://...``) with the environment's SSH
        settings. SSH never prompts (BatchMode), and a session that stops answering ends after its keep-alives; one
        connection per host serves the run's commands (ControlMaster) and closes soon after it."""
        key = f"host:{url}"
        if key not in self._cache:
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
            self._cache[key] = testinfra.get_host(url, **options)
            if "controlpath" in options:
                _ssh_connections[options["controlpath"]] = self._cache[key]
        return self._cache[key]

    @property
    def http_timeout(self) -> tuple[float, float]:
        return (self.env.timeouts.connect_seconds, self.env.timeouts.read_seconds)

    @property
    def api_url(self) -> str:
        return self.endpoint(self.env.api.url, what="api.url").rstrip("/")

    def close(self) -> None:
        for key, client in self._cache.items():
            # SSH connections end with the run (close_ssh_connections), AWS clients with the process (shared)
            close = None if isinstance(client, Host) or key.startswith("aws:") else getattr(client, "close", None)
            if close:
                close()
        self._cache.clear()
