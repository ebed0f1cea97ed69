"""The sections of the runbook's judgement and procedures: thresholds, CloudTrail, the deploy gate, load, chaos,
remediation, notifications, metrics, redaction."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from entmoot_ops.config.references import HttpUrl, PositiveSeconds, Ratio, SecretRef, Strict


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


class RemediationSettings(Strict):
    verify_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 300
    verify_interval_seconds: Annotated[float, Field(gt=0, le=300)] = 15


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


class HistorySettings(Strict):
    """The on-call's memory (entmoot_ops.history): every run of every check, kept to say what changed since the last
    run, which checks flap and where a gauge is heading. SQLite on this machine by default; a team shares one
    PostgreSQL database (``dsn``, a reference), whose schema the suite creates and migrates."""

    enabled: bool = True
    path: str | None = None  # the SQLite file; default $XDG_STATE_HOME/entmoot-ops/history.sqlite3 (~/.local/state)
    dsn: SecretRef | None = None  # a PostgreSQL connection string, which usually holds a password: a reference
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 400  # a year and a season: last year's same week stays
    timeout_seconds: PositiveSeconds = 5  # connecting and each statement: the store never holds up a verdict
    # Nagios' flap detection: the weighted share of state changes over the last 21 runs; a check starts flapping at
    # flap_high_percent and stops below flap_low_percent (Nagios' service defaults are 20 and 5).
    flap_high_percent: Annotated[float, Field(gt=0, le=100)] = 20
    flap_low_percent: Annotated[float, Field(ge=0, le=100)] = 5
    # A gauge moving toward its threshold (free storage, connections, replica lag, memory, sequence headroom) is fitted
    # over trend_days and warned about when it would cross within horizon_days at that rate.
    trend_days: Annotated[float, Field(gt=0, le=90)] = 14
    horizon_days: Annotated[float, Field(gt=0, le=365)] = 7
    trend_min_runs: Annotated[int, Field(ge=2, le=1000)] = 4  # fewer readings than this say nothing of a rate

    @model_validator(mode="after")
    def _hysteresis(self) -> HistorySettings:
        if self.flap_low_percent > self.flap_high_percent:
            raise ValueError("flap_low_percent must not exceed flap_high_percent")
        return self


class SilenceSettings(Strict):
    """Silences (entmoot-ops silence): kept in NAME.silences.toml beside the environment's file, each with an end."""

    longest_days: Annotated[float, Field(gt=0, le=365)] = 30  # a silence ending later is refused
    stale_days: Annotated[float, Field(gt=0, le=90)] = 7  # a silence that matched nothing for this long is stale
    ending_hours: Annotated[float, Field(gt=0, le=168)] = 24  # a run says which silences end within this


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

    keep_emails: bool = False  # true keeps e-mail addresses in the outputs, where a team wants them
    public_ipv4: bool = False  # redact IPv4 addresses outside 10/8, 172.16/12, 192.168/16, 127/8, 169.254/16, 100.64/10
    # Extra patterns, name -> regular expression, e.g. { customer-id = "CUST-[0-9]{6}" } -> [redacted:customer-id]
    patterns: Annotated[dict[str, str], AfterValidator(_patterns)] = {}


