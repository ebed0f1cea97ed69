"""The sections naming what an environment runs: AWS, the API, ECS, RDS, PostgreSQL, Redis, logs, the ALB, hosts, TLS."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from entmoot_ops.config.references import EndpointRef, HostUrl, PathRef, PositiveSeconds, SecretRef, Strict


class Timeouts(Strict):
    connect_seconds: PositiveSeconds = 3
    read_seconds: PositiveSeconds = 10
    # Total attempts per AWS call: a hung endpoint costs up to attempts x read_seconds per check.
    aws_max_attempts: Annotated[int, Field(ge=1, le=10)] = 3


class Concurrency(Strict):
    """How much of an environment is asked at once. A run pays the network's depth, not its number of calls: the
    checks' measurements are issued together, each check's own reads in its own order."""

    # The checks of this environment that measure at once (their threads), and the connections kept to each AWS
    # endpoint and to the API.
    reads: Annotated[int, Field(ge=1, le=256)] = 32
    # The sessions kept to each PostgreSQL database and role, shared by the checks measuring at once: each costs
    # the server a process. 1 makes the checks' statements take turns on one session.
    postgres_sessions: Annotated[int, Field(ge=1, le=32)] = 2


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


