"""Environment configuration: one strict TOML file per environment, runbook thresholds as defaults.

Secrets and per-machine endpoints are *references* (``env:NAME`` or a Secrets Manager ARN), resolved at use
time by :mod:`entmoot_ops.secrets`; a literal secret in a TOML file is a validation error.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from entmoot_ops.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

SECRET_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+)$"
SecretRef = Annotated[str, StringConstraints(pattern=SECRET_PATTERN)]
URL_SCHEMES = ("http", "https", "redis", "rediss", "unix")


def _endpoint(value: str) -> str:
    if value.startswith("env:"):
        if not re.fullmatch(r"env:[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("env: must be followed by a variable name")
        return value
    parts = urlsplit(value)
    if parts.scheme not in URL_SCHEMES or not (parts.hostname or parts.scheme == "unix"):
        raise ValueError(f"not a URL ({'|'.join(URL_SCHEMES)}://host[:port]) nor an env:NAME reference")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    return value


# An endpoint is either written out (not secret: a URL) or read from an environment variable (checked on use).
EndpointRef = Annotated[str, StringConstraints(min_length=1), AfterValidator(_endpoint)]
# A file on this machine or on a host, written out (absolute, or ~/...) or read from an environment variable.
PathRef = Annotated[str, StringConstraints(pattern=r"^(env:[A-Za-z_][A-Za-z0-9_]*|/.*|~/.*)$")]
# testinfra's connection backends (https://testinfra.readthedocs.io/en/latest/backends.html).
HOST_BACKENDS = ("local", "ssh", "paramiko", "docker", "podman", "kubectl", "openshift", "ansible", "salt", "winrm", "lxc")


def _host_url(value: str) -> str:
    scheme, separator, _ = value.partition("://")
    if not separator or scheme not in HOST_BACKENDS:
        raise ValueError(f"not a testinfra host URL ({'|'.join(HOST_BACKENDS)}://...), e.g. ssh://oncall@bastion")
    return value


HostUrl = Annotated[str, AfterValidator(_host_url)]
Ratio = Annotated[float, Field(ge=0, le=1)]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]


class Strict(BaseModel):
    # strict: `production = "yes"` or `read_seconds = "10"` is refused, not guessed (TOML has real booleans and numbers).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Timeouts(Strict):
    connect_seconds: PositiveSeconds = 3
    read_seconds: PositiveSeconds = 10
    # Total attempts per AWS call: a hung endpoint costs up to attempts x read_seconds per check.
    aws_max_attempts: Annotated[int, Field(ge=1, le=10)] = 3


class AwsSettings(Strict):
    region: str = "us-east-1"
    # Scopes the printed IAM policy (entmoot-ops iam-policy) to this account's ARNs; "*" in them without it.
    account_id: Annotated[str, Field(pattern=r"^\d{12}$")] | None = None
    profile: str | None = None
    endpoint_url: EndpointRef | None = None
    # Normally absent: a profile or the process's environment is preferred. The sandbox names its own.
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    # Where the credentials come from: "keys" (the two above), "profile" (a profile of ~/.aws/config: SSO,
    # credential_process, a role it assumes), "environment" (AWS_ACCESS_KEY_ID..., a web identity token), "instance"
    # (the EC2 instance's or the ECS task's role), or "default": the keys when given, else the profile when named, else
    # the environment and the shared files. Only "instance" asks the instance metadata service (169.254.169.254): on a
    # laptop or a CI runner that is a delay and traffic nobody asked for.
    credentials: Literal["default", "keys", "profile", "environment", "instance"] = "default"
    # A role assumed with the credentials above (sts:AssumeRole), e.g. a read-only role in the environment's account.
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+")] | None = None

    @model_validator(mode="after")
    def _credentials_named(self) -> AwsSettings:
        keys = (self.access_key_id, self.secret_access_key)
        if any(keys) and not all(keys):
            raise ValueError("access_key_id and secret_access_key go together")
        if self.credentials == "keys" and not all(keys):
            raise ValueError('credentials = "keys" needs access_key_id and secret_access_key')
        if self.credentials == "profile" and not self.profile:
            raise ValueError('credentials = "profile" needs profile')
        if self.credentials not in ("default", "keys") and all(keys):
            raise ValueError(f'access_key_id and secret_access_key are keys: credentials = "{self.credentials}" would not use them')
        return self

    @property
    def credential_source(self) -> str:
        if self.credentials != "default":
            return self.credentials
        return "keys" if self.access_key_id else "profile" if self.profile else "chain"


class ApiAuth(Strict):
    scheme: Literal["bearer", "header", "none"] = "bearer"
    header: str = "Authorization"
    secret: SecretRef | None = None

    @model_validator(mode="after")
    def _secret_when_authenticated(self) -> ApiAuth:
        if self.scheme != "none" and self.secret is None:
            raise ValueError(f"auth scheme {self.scheme!r} needs a secret reference (env:NAME or a Secrets Manager ARN)")
        return self


class ApiSettings(Strict):
    url: EndpointRef
    health_path: str = "/health"
    auth: ApiAuth = ApiAuth(scheme="none")
    healthy_statuses: tuple[str, ...] = ("healthy", "ok")
    # /health is public on the real API: auth is proven on a route that must demand it.
    protected_path: Annotated[str, StringConstraints(pattern=r"^/")] = "/api/v1/projects"
    # Dotted paths into the /health body and the value each must have, e.g. {"storage.backend" = "redis"}: the
    # real API answers "healthy" after falling back from Redis to memory.
    health_expect: dict[str, str] = {}
    # Any value in the body (first word, any case) from this set fails, naming its path.
    health_bad_values: tuple[str, ...] = ("failed", "unavailable", "down", "error", "degraded", "unhealthy")


class EcsSettings(Strict):
    cluster: str
    service: str = "entmoot-api"
    min_count: Annotated[int, Field(ge=1)] = 3
    max_count: Annotated[int, Field(ge=1)] = 20
    scale_out_step: Annotated[int, Field(ge=1)] = 2

    @model_validator(mode="after")
    def _bounds(self) -> EcsSettings:
        if self.min_count > self.max_count:
            raise ValueError(f"min_count {self.min_count} exceeds max_count {self.max_count}")
        return self


class RdsSettings(Strict):
    instance: str
    # Upper bound for the storage remediation: it never asks AWS for more than this.
    max_allocated_storage_gib: Annotated[int, Field(ge=20, le=65536)] = 500
    storage_increase_ratio: Annotated[float, Field(ge=1.1, le=2.0)] = 1.25
    # Vertical Scaling (runbook): acting needs this allow, and --yes on production; otherwise it stays a plan.
    scaling_allowed: bool = False
    instance_classes: tuple[str, ...] = ("db.r6i.large", "db.r6i.xlarge", "db.r6i.2xlarge", "db.r6i.4xlarge", "db.r6i.8xlarge")
    # The runbook warns that --apply-immediately "causes brief outage": by default the change waits for the
    # maintenance window.
    apply_immediately: bool = False
    scale_up_timeout_seconds: Annotated[float, Field(gt=0, le=7200)] = 1800


class Replica(Strict):
    name: str  # application_name as seen in pg_stat_replication
    dsn: SecretRef | None = None


class PostgresSettings(Strict):
    primary_dsn: SecretRef
    admin_dsn: SecretRef | None = None  # used by remediations only; check mode never writes
    application_role: str = "entmoot_app"
    replicas: tuple[Replica, ...] = ()
    replica_lag_source: Literal["postgres", "cloudwatch"] = "postgres"
    replica_instances: tuple[str, ...] = ()  # RDS read-replica identifiers for the CloudWatch ReplicaLag source
    # The application's pool per ECS task (DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW); unset: not judged.
    pool_size: Annotated[int, Field(ge=1)] | None = None
    pool_max_overflow: Annotated[int, Field(ge=0)] = 0
    # Whose long-running statements a remediation may cancel (default: the application role only), and how long a
    # cancelled statement has before its session is terminated.
    cancel_roles: tuple[str, ...] = ()
    cancel_grace_seconds: Annotated[float, Field(ge=0, le=300)] = 10
    # Query Optimization: the spatial query whose plan must use the GiST index on buildings.geom (EXPLAIN only).
    spatial_query: str = "SELECT id FROM buildings WHERE ST_Intersects(geom, ST_MakeEnvelope(0, 0, 50, 50, 4326))"
    spatial_column: str = "buildings.geom"
    # Maintenance acting: batches of the archive, and whether an unused index may be dropped (else a plan only).
    archive_batch_rows: Annotated[int, Field(ge=1, le=100000)] = 1000
    archive_max_batches: Annotated[int, Field(ge=1)] = 1000
    drop_unused_indexes_allowed: bool = False
    maintenance_timeout_seconds: Annotated[float, Field(gt=0, le=86400)] = 3600  # one VACUUM, ANALYZE or REINDEX
    # Connection Pool Tuning: pool_size = (core_count * 2) + effective_spindle_count (network storage counts as 1); a
    # pool this many times the formula keeps more sessions busy than the cores can serve.
    effective_spindles: Annotated[int, Field(ge=0)] = 1
    pool_formula_max_factor: Annotated[float, Field(ge=1)] = 4.0

    @model_validator(mode="after")
    def _lag_source(self) -> PostgresSettings:
        if self.replica_lag_source == "cloudwatch" and not self.replica_instances:
            raise ValueError("replica_lag_source 'cloudwatch' needs replica_instances (RDS identifiers)")
        if self.replica_lag_source == "postgres" and any(r.dsn is None for r in self.replicas):
            raise ValueError("replica_lag_source 'postgres' needs a dsn for every replica")
        return self


class RedisSettings(Strict):
    url: EndpointRef
    replica_url: EndpointRef | None = None  # a read replica: the TTL audit scans there
    password: SecretRef | None = None
    replication_group: str | None = None  # ElastiCache id, for CloudWatch hit/eviction metrics
    # Cache Scaling (runbook): acting needs this allow, and --yes on production; otherwise it stays a plan.
    scaling_allowed: bool = False
    node_types: tuple[str, ...] = ("cache.t3.medium", "cache.r6g.large", "cache.r6g.xlarge", "cache.r6g.2xlarge",
                                   "cache.r6g.4xlarge")  # the ladder a scale-up climbs, one step at a time
    max_replicas: Annotated[int, Field(ge=0, le=5)] = 5  # runbook: --new-replica-count 5; ElastiCache allows 5
    # Redis Connection Issues, solution 3 on a self-managed Redis (ElastiCache refuses CONFIG SET): acting needs
    # this allow and a ceiling; the new maxmemory gives the data in use this much headroom.
    config_set_allowed: bool = False
    maxmemory_max_bytes: Annotated[int, Field(gt=0)] | None = None
    maxmemory_headroom: Annotated[float, Field(gt=1, le=4)] = 1.25
    # Performance Optimization > Caching Strategy: the longest TTL each key prefix may have, in seconds. The runbook's
    # guidelines: constraint data 24 h, elevation (DEM) 7 days, user preferences 1 h, API responses 5 min, sessions
    # 24 h. A prefix mapped to None may keep keys without a TTL (e.g. "project:" where it is the store of record).
    ttl_policy: dict[str, Annotated[int, Field(gt=0)] | None] = {
        "constraints:": 86400, "dem:": 604800, "prefs:": 3600, "project:": 300, "session:": 86400}
    ttl_sample_keys: Annotated[int, Field(ge=100, le=1_000_000)] = 10000  # SCAN stops after this many keys
    ttl_fix_allowed: bool = False  # EXPIRE on keys that break the policy: a plan unless allowed
    ttl_fix_max_keys: Annotated[int, Field(ge=1, le=100000)] = 1000


class GcpLogs(Strict):
    """GCP Cloud Logging (the runbook's ``gcloud logging read`` filters). Credentials: Application Default Credentials."""

    project: str
    service_name: str = "entmoot-api"
    resource_type: str = "cloud_run_revision"
    endpoint: str | None = None  # a private or regional endpoint; the SDK's default otherwise


class AzureLogs(Strict):
    """Azure Monitor Logs (a Log Analytics workspace). Credentials: DefaultAzureCredential's chain."""

    workspace_id: str
    table: str = "ContainerAppConsoleLogs_CL"
    message_column: str = "Log_s"  # the column holding the application's JSON line
    service_column: str = "ContainerAppName_s"
    service_name: str = "entmoot-api"
    endpoint: str | None = None  # e.g. a sovereign cloud's "https://api.loganalytics.azure.cn/v1"


class LogsSettings(Strict):
    """Where the API's logs are read. The application writes one JSON object per request (level, request_id,
    method, path, status, duration_ms, error); every backend answers the same questions from it."""

    backend: Literal["cloudwatch", "gcp", "azure"] = "cloudwatch"
    group: str | None = None  # CloudWatch Logs group (backend "cloudwatch")
    # Logs Insights aggregates on the server, so its cost does not grow with the volume; FilterLogEvents (bounded
    # pages, grouped here) is the fallback for an account or role without logs:StartQuery.
    insights: bool = True
    query_timeout_seconds: PositiveSeconds = 30
    top_groups: Annotated[int, Field(ge=1, le=100)] = 10
    # Reads of raw events (FilterLogEvents, GCP, Azure) stop after this many pages, so their cost stays bounded.
    max_pages: Annotated[int, Field(ge=1, le=50)] = 3
    gcp: GcpLogs | None = None
    azure: AzureLogs | None = None

    @model_validator(mode="after")
    def _backend_settings(self) -> LogsSettings:
        needed = {"cloudwatch": ("group", self.group), "gcp": ("[logs.gcp]", self.gcp), "azure": ("[logs.azure]", self.azure)}
        what, value = needed[self.backend]
        if value is None:
            raise ValueError(f"logs backend {self.backend!r} needs {what}")
        return self


class AlbSettings(Strict):
    load_balancer: str  # the ALB's name; the probe derives CloudWatch's LoadBalancer dimension from its ARN
    target_group: str = "entmoot-api"  # the API's target group (HealthyHostCount), by name


class PostgresHost(Strict):
    """A PostgreSQL server the team runs itself (not RDS), reached over SSH or another testinfra backend."""
    url: HostUrl
    config_file: PathRef  # postgresql.conf, e.g. /etc/postgresql/15/main/postgresql.conf
    hba_file: PathRef  # pg_hba.conf
    auto_file: str | None = None  # postgresql.auto.conf; default: in data_directory, else beside config_file
    process: str = "postgres"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None  # default: the port of postgres.primary_dsn


class RedisHost(Strict):
    """A Redis server the team runs itself (not ElastiCache)."""
    url: HostUrl
    config_file: PathRef  # redis.conf, e.g. /etc/redis/redis.conf
    process: str = "redis-server"
    port: Annotated[int, Field(ge=1, le=65535)] | None = None  # default: the port of redis.url


class HostsSettings(Strict):
    # The on-call's hosts: the machine the suite runs on, or a bastion (ssh://oncall@bastion.example.org).
    # testinfra's own --hosts replaces this list for one run.
    oncall: tuple[HostUrl, ...] = ("local://",)
    ssh_config: PathRef | None = None
    ssh_identity_file: PathRef | None = None
    # The tools the runbook's manual steps call, and the oldest version that runs them: `aws logs tail` (Incident
    # Response) exists from the AWS CLI v2; PostgreSQL 13+ servers want a psql of 13 or later; redis-cli 6 speaks
    # ACL users and TLS (ElastiCache in-transit encryption); jq 1.6 and curl 7.68 are the oldest in supported LTS distributions.
    tools: dict[str, Annotated[str, StringConstraints(pattern=r"^\d+(\.\d+)*$")]] = {
        "aws": "2.0", "psql": "13", "redis-cli": "6.0", "jq": "1.6", "curl": "7.68"}
    disk_paths: tuple[str, ...] = ("/",)
    clock_source: Literal["api", "aws"] = "api"  # whose Date header the on-call host's clock is held to
    postgres: tuple[PostgresHost, ...] = ()
    redis: tuple[RedisHost, ...] = ()


class TlsSettings(Strict):
    endpoints: tuple[EndpointRef, ...] = ()  # HTTPS URLs whose certificates are checked; default: api.url if HTTPS
    ca_file: PathRef | None = None  # a private CA to trust besides the system's
    # The endpoints' certificates are the load balancer's ACM ones (false behind CloudFront or another proxy).
    served_by_alb: bool = True


class Thresholds(Strict):
    """Runbook thresholds. Each default cites where it comes from."""

    error_rate_max: Ratio = 0.01  # Troubleshooting > High API Error Rate: "> 1%"
    handoff_error_rate_max: Ratio = 0.005  # Handoff: "should be < 0.5%"
    error_rate_window_minutes: Annotated[int, Field(ge=5, le=1440)] = 60  # Morning [6]: "last hour"
    error_rate_min_requests: Annotated[int, Field(ge=1)] = 100  # below this a rate says nothing
    replication_lag_max_seconds: Annotated[float, Field(gt=0)] = 60  # Alert: Database Replication Lag (>60s)
    redis_hit_rate_min: Ratio = 0.70  # Cache Scaling: "Hit rate < 70%"
    redis_min_lookups: Annotated[int, Field(ge=1)] = 100
    redis_memory_max_ratio: Ratio = 0.90  # Cache Scaling: "Memory near 90% utilization"
    redis_evictions_max: Annotated[int, Field(ge=0)] = 0  # Cache Scaling: "Eviction rate increasing"
    redis_window_minutes: Annotated[int, Field(ge=1, le=1440)] = 60
    # A collapse in the last minutes is averaged away over an hour: the hit rate is judged over both windows.
    redis_recent_window_minutes: Annotated[float, Field(gt=0, le=1440)] = 10
    rds_free_storage_min_ratio: Ratio = 0.10  # Alert: Disk Space Low (<10%)
    metric_period_seconds: Annotated[int, Field(ge=1, le=86400)] = 60
    tls_min_days: Annotated[float, Field(ge=0, le=825)] = 14  # a certificate with fewer days left fails
    clock_max_skew_seconds: Annotated[float, Field(gt=0, le=3600)] = 1.0
    host_disk_max_ratio: Ratio = 0.90  # Alert: Disk Space Low (<10% free), held to the on-call's hosts too
    host_inodes_max_ratio: Ratio = 0.90
    metric_freshness_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    connections_max_ratio: Ratio = 0.80  # pool exhaustion happens before max_connections is reached
    job_pending_max_age_minutes: Annotated[float, Field(gt=0)] = 30
    job_running_max_minutes: Annotated[float, Field(gt=0)] = 60
    idle_session_max_minutes: Annotated[float, Field(gt=0)] = 30  # Connection Pool Exhaustion, solution 2
    # A pool keeps a few idle connections by design; long-idle sessions matter when they hold the connections.
    idle_sessions_max_ratio: Ratio = 0.20
    # A transaction left open holds its connection (and its locks) whatever the pool thinks.
    idle_in_transaction_max_seconds: Annotated[float, Field(gt=0)] = 300
    # High Database CPU: a statement still running past this; tables scanned sequentially more than by index.
    long_query_max_seconds: Annotated[float, Field(gt=0)] = 300
    seq_scan_min: Annotated[int, Field(ge=0)] = 1000  # the runbook's "seq_scan > 1000"
    seq_scan_min_rows: Annotated[int, Field(ge=0)] = 10000  # below this a whole-table scan is the right plan
    statement_mean_max_ms: Annotated[float, Field(gt=0)] = 1000
    backup_max_age_hours: Annotated[float, Field(gt=0)] = 24  # Evening [1]: "Backup is ... hours old" > 24
    pitr_max_lag_minutes: Annotated[float, Field(gt=0)] = 15  # RDS ships transaction logs every 5 min
    traffic_change_max_ratio: Annotated[float, Field(gt=1)] = 2.0  # 24 h vs the same 24 h a week earlier
    latency_p95_max_ms: Annotated[float, Field(gt=0)] = 500  # Scaling: "Request latency p95 > 500ms"
    latency_window_minutes: Annotated[float, Field(gt=0, le=1440)] = 15
    # Scaling > Horizontal Scaling, "When to scale out": CPU > 70%, memory > 80%, p95 > 500 ms, error rate > 0.5%.
    scale_out_cpu_percent: Annotated[float, Field(gt=0, le=100)] = 70
    scale_out_memory_percent: Annotated[float, Field(gt=0, le=100)] = 80
    scale_out_error_rate: Ratio = 0.005
    # Scaling > Vertical Scaling, "When to scale up": a single instance consistently at 90%+ CPU.
    rds_cpu_sustained_max_percent: Annotated[float, Field(gt=0, le=100)] = 90
    # Alert: High CPU Utilization (>80%), ECS service and RDS: the average over the window, as a CloudWatch alarm of
    # one datapoint of that period judges it.
    cpu_alert_percent: Annotated[float, Field(gt=0, le=100)] = 80
    cpu_alert_window_minutes: Annotated[float, Field(gt=0, le=1440)] = 5
    rds_cpu_window_minutes: Annotated[float, Field(gt=0, le=1440)] = 15
    # Troubleshooting > High API Error Rate: "error logs ... 30 minutes ago"; errors that begin this soon after a
    # PRIMARY deployment's start point at the deployment; a kind of error this common is the cause.
    incident_window_minutes: Annotated[float, Field(gt=0, le=1440)] = 30
    deploy_correlation_minutes: Annotated[float, Field(gt=0, le=1440)] = 10
    error_cause_min_share: Ratio = 0.5
    memory_max_percent: Annotated[float, Field(gt=0, le=100)] = 90  # Common Causes: "Memory leak/OOM"
    # API Response Time High: "Check slow endpoints" (requests of a second or more, per path); a path is slow when
    # this many of its requests were.
    slow_request_min_ms: Annotated[float, Field(gt=0)] = 1000
    slow_endpoint_min_requests: Annotated[int, Field(ge=1)] = 5
    latency_p99_max_ms: Annotated[float, Field(gt=0)] | None = None  # judged only when set; reported always
    # "Request queue depth": requests a second per healthy target. A task's capacity comes from a load test of
    # this service (entmoot-ops load); without it, the figure is reported and not judged.
    requests_per_host_max_rps: Annotated[float, Field(gt=0)] | None = None
    # Database Maintenance. A table is overdue when its modifications (dead rows) pass this many times the threshold
    # at which autovacuum should have analyzed (vacuumed) it: autovacuum is not keeping up with its write rate.
    upkeep_overdue_factor: Annotated[float, Field(ge=1)] = 2.0
    upkeep_min_rows: Annotated[int, Field(ge=0)] = 1000  # smaller tables are scanned whole: their upkeep is moot
    # Bloat: a statistical estimate, judged on relations of at least bloat_min_bytes (smaller ones cost nothing).
    bloat_max_ratio: Ratio = 0.5
    bloat_min_bytes: Annotated[int, Field(ge=0)] = 10 * 1024 * 1024
    xid_age_max_ratio: Ratio = 0.5  # of the ~2.1 billion transactions before wraparound (check_postgres warns there)
    sequence_max_ratio: Ratio = 0.8
    unused_index_min_days: Annotated[float, Field(ge=0)] = 30  # statistics younger than this cannot call an index unused
    job_retention_days: Annotated[float, Field(gt=0)] = 90  # Monthly Maintenance [4]
    # Query Performance Tuning: "mean_time > 1000", and "mean_time > 100 AND calls > 100".
    slow_statement_mean_ms: Annotated[float, Field(gt=0)] = 1000
    frequent_statement_mean_ms: Annotated[float, Field(gt=0)] = 100
    frequent_statement_min_calls: Annotated[int, Field(ge=0)] = 100


ACTIVITY_RULES = ("root-account-usage", "console-login-without-mfa", "iam-change", "security-group-open-to-world",
                  "kms-key-disabled", "db-deletion", "trail-logging-stopped", "access-denied-burst")


class ChangeWindow(Strict):
    """A recurring weekly window (UTC) in which planned changes by allowed principals are expected."""

    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> ChangeWindow:
        if self.start >= self.end:
            raise ValueError(f"change window start {self.start} is not before end {self.end}")
        return self


class CloudTrailSettings(Strict):
    window_hours: Annotated[int, Field(ge=1, le=168)] = 24
    # Write events are read with a bound so the cost does not grow without limit; an incomplete read is said.
    max_events: Annotated[int, Field(ge=50, le=100000)] = 5000
    rules: tuple[Literal[ACTIVITY_RULES], ...] = ACTIVITY_RULES  # type: ignore[valid-type]
    # Principals (ARN prefixes) whose changes are expected, e.g. the deploy pipeline's role. Root is never allowed.
    allow_principals: tuple[str, ...] = ()
    change_windows: tuple[ChangeWindow, ...] = ()
    access_denied_burst: Annotated[int, Field(ge=1)] = 20  # denied calls by one principal in an hour


class DeploySettings(Strict):
    rollout_timeout_seconds: Annotated[float, Field(gt=0, le=7200)] = 900
    poll_seconds: Annotated[float, Field(gt=0, le=300)] = 15
    error_rate_max: Ratio = 0.01
    min_requests: Annotated[int, Field(ge=1)] = 50
    # Until how long after the deployment started the error-rate gate waits for min_requests in CloudWatch: a
    # 1-minute period, then 1 to 3 minutes before its datapoints are readable.
    bake_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 300
    p95_max_ms: Annotated[float, Field(gt=0)] = 500  # runbook API Response Time High: p95 > 500 ms
    sample_requests: Annotated[int, Field(ge=1, le=1000)] = 20
    sample_path: str = "/health"


LOAD_TASKS = ("health", "projects", "project", "optimize")


class LoadSettings(Strict):
    """A load run is an action: off on AWS environments unless allowed here, and bounded whatever it asks."""

    allowed: bool = False  # the sandbox is always allowed; any other environment must say so
    shape: Literal["baseline", "ramp", "spike", "soak"] = "baseline"
    users: Annotated[int, Field(ge=1)] = 10
    spawn_rate: Annotated[float, Field(gt=0)] = 5
    duration_seconds: Annotated[float, Field(gt=0)] = 30
    processes: Annotated[int, Field(ge=1, le=64)] = 1  # locust processes on this machine (its --processes)
    max_users: Annotated[int, Field(ge=1, le=10000)] = 50
    max_spawn_rate: Annotated[float, Field(gt=0, le=1000)] = 20
    max_duration_seconds: Annotated[float, Field(gt=0, le=7200)] = 600
    weights: dict[Literal[LOAD_TASKS], Annotated[int, Field(ge=0)]] = {  # type: ignore[valid-type]
        "health": 1, "projects": 3, "project": 6, "optimize": 1}
    # The API's routes; {id} is filled in. The defaults are the sandbox's.
    paths: dict[Literal["health", "projects", "project", "optimize", "job"], str] = {  # type: ignore[valid-type]
        "health": "/health", "projects": "/api/projects", "project": "/api/projects/{id}", "optimize": "/api/optimize",
        "job": "/api/jobs/{id}"}
    project_ids: tuple[int, int] = (1, 50)
    think_seconds: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = (0.05, 0.2)  # per user, between requests
    # A breach stops the run early; an experiment that wants the breach to go on (to watch a fix work) says False.
    stop_on_breach: bool = True

    @model_validator(mode="after")
    def _bounded(self) -> LoadSettings:
        for name, value, bound in (("users", self.users, self.max_users), ("spawn_rate", self.spawn_rate, self.max_spawn_rate),
                                   ("duration_seconds", self.duration_seconds, self.max_duration_seconds)):
            if value > bound:
                raise ValueError(f"{name} {value:g} exceeds max_{name} {bound:g}")
        if not any(self.weights.values()):
            raise ValueError("weights: at least one task needs a weight above 0")
        return self


class ChaosSettings(Strict):
    """A chaos experiment breaks things on purpose: off unless allowed here, for the experiments listed, within a
    blast radius and a time limit."""

    allowed: bool = False
    experiments: tuple[str, ...] = ()  # the allow-list, by experiment name (entmoot-ops chaos list)
    max_task_fraction: Annotated[float, Field(gt=0, le=1)] = 0.34  # of the service's running tasks, at most
    primary_allowed: bool = False  # an experiment on the primary database must be allowed explicitly
    time_limit_seconds: Annotated[float, Field(gt=0, le=3600)] = 300
    detection_timeout_seconds: Annotated[float, Field(gt=0, le=1800)] = 60
    recovery_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 120
    poll_seconds: Annotated[float, Field(gt=0, le=300)] = 2
    # Safeguard: the experiment is aborted and rolled back at once when the API's 5XX ratio goes above this.
    abort_error_rate: Ratio = 0.5
    fis_templates: dict[str, str] = {}  # experiment name -> AWS FIS experiment template id or Name tag
    # The environment's own experiment files (entmoot_ops.chaos.files), beside the project's experiments/.
    experiments_dir: Annotated[str, StringConstraints(pattern=r"^(/|~/).*")] | None = None


class Remediation(Strict):
    verify_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 300
    verify_interval_seconds: Annotated[float, Field(gt=0, le=300)] = 15


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s)://host URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class NotifySettings(Strict):
    """Notifications on state change (entmoot_ops.notify). URLs that carry a credential and keys are references."""

    slack_webhook: SecretRef | None = None  # an incoming webhook's URL: its path is the credential
    pagerduty_routing_key: SecretRef | None = None  # an Events API v2 integration key
    pagerduty_events_url: HttpUrl = "https://events.pagerduty.com"
    pagerduty_min_severity: Literal["critical", "high", "medium", "low"] = "high"  # trigger at or above
    webhook: SecretRef | None = None  # a generic JSON webhook's URL
    report_url: HttpUrl | None = None  # where the team reads the report: linked from every message
    state_file: str | None = None  # what each channel was last told; default: <reports>/notify-state.json
    timeout_seconds: PositiveSeconds = 5


class MetricsSettings(Strict):
    """Metrics for dashboards (entmoot_ops.metrics): a textfile-collector file per run, and/or a Pushgateway."""

    textfile_dir: str | None = None  # node_exporter's --collector.textfile.directory
    pushgateway: HttpUrl | None = None
    timeout_seconds: PositiveSeconds = 5


def _patterns(value: dict[str, str]) -> dict[str, str]:
    for name, regex in value.items():
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise ValueError(f"{name!r}: a pattern's name is its marker, [redacted:NAME]: lowercase letters, digits and -")
        try:
            re.compile(regex)
        except re.error as exc:
            raise ValueError(f"{name}: not a regular expression: {exc}") from None
    return value


class RedactionSettings(Strict):
    """What is redacted from what the suite copies out of the environment (entmoot_ops.redaction): credentials,
    tokens and keys always; e-mail addresses unless kept; IPv4 addresses outside private ranges where asked."""

    keep_emails: bool = False
    public_ipv4: bool = False
    # Extra patterns, name -> regular expression, e.g. { customer-id = "CUST-[0-9]{6}" } -> [redacted:customer-id]
    patterns: Annotated[dict[str, str], AfterValidator(_patterns)] = {}


class Environment(Strict):
    name: str
    kind: Literal["aws", "sandbox"] = "aws"
    production: bool = False
    # Which checks read their evidence (log groups, top statements): those that did not pass, or all (--evidence).
    evidence: Literal["failures", "all"] = "failures"
    runbook_url: str = "https://github.com/entmoot/entmoot/blob/main/docs/operations-runbook.md"
    aws: AwsSettings = AwsSettings()
    timeouts: Timeouts = Timeouts()
    api: ApiSettings
    ecs: EcsSettings
    rds: RdsSettings
    postgres: PostgresSettings
    redis: RedisSettings
    logs: LogsSettings
    alb: AlbSettings
    thresholds: Thresholds = Thresholds()
    cloudtrail: CloudTrailSettings = CloudTrailSettings()
    deploy: DeploySettings = DeploySettings()
    remediation: Remediation = Remediation()
    load: LoadSettings = LoadSettings()
    chaos: ChaosSettings = ChaosSettings()
    notify: NotifySettings = NotifySettings()
    metrics: MetricsSettings = MetricsSettings()
    hosts: HostsSettings = HostsSettings()
    tls: TlsSettings = TlsSettings()
    redaction: RedactionSettings = RedactionSettings()


def environments_dir() -> Path:
    return Path(os.environ.get("ENTMOOT_ENVIRONMENTS", Path.cwd() / "environments"))


def load_environment(name: str, directory: Path | None = None) -> Environment:
    directory = directory or environments_dir()
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.toml")) if directory.is_dir() else []
        raise ConfigError(f"{path}: no such environment {name!r} (known: {', '.join(known) or 'none'})")
    data = read_toml(path)
    data.setdefault("name", name)
    if data["name"] != name:
        raise ConfigError(f"{path}: name: {data['name']!r} does not match the file name {name!r}")
    return validated(path, Environment, data)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None


def validated(path: Path, model: type[M], data: dict[str, Any]) -> M:
    """``data`` (a TOML file's) as ``model``, strictly. Every mistake of the file is named, one line each with its
    key: fixed one at a time, a file with three would take three runs to learn it."""
    try:
        return model.model_validate(_tuples(data))
    except ValidationError as exc:
        errors = exc.errors()
        mistakes = [f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {_explain(error)}"
                    for error in errors if not _echo(error, errors)]
        if len(mistakes) == 1:
            raise ConfigError(f"{path}: {mistakes[0]}") from None
        raise ConfigError(f"{path}: {len(mistakes)} mistakes\n" + "\n".join(f"  {mistake}" for mistake in mistakes)) from None


def _echo(error: dict, errors: list[dict]) -> bool:
    """Pydantic counts a collection's items after validating them: a wrong item also makes ``method`` "too short,
    not 0", the same mistake said twice."""
    loc = error["loc"]
    return error["type"] == "too_short" and any(len(other["loc"]) > len(loc) and other["loc"][:len(loc)] == loc
                                                for other in errors)


def _tuples(value: Any) -> Any:
    """TOML arrays as tuples: strict validation takes a tuple field only from a tuple (the models are frozen)."""
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def _explain(error: dict) -> str:
    """Pydantic's message, with the value only where it cannot be a secret: a refused literal in a secret's
    place would otherwise be printed, password and all, into a CI log."""
    if error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == SECRET_PATTERN:
        return "a literal value is not accepted here: write a reference, env:NAME or a Secrets Manager ARN"
    shown = error["type"] != "missing" and not isinstance(error["input"], (dict, str, list))
    return error["msg"] + (f" (got {error['input']!r})" if shown else "")
