"""What moto 5.2 lacks and the checks need, taught to it in-process (the sandbox's moto only).

- CloudWatch ``GetMetricStatistics`` with ``ExtendedStatistics`` (pNN): moto ignores them. Percentiles are
  computed by nearest rank from the raw datapoints moto stores (``Values``/``Counts`` are stored expanded).
- RDS ``LatestRestorableTime``: moto always answers "now"; the sandbox can hold it back (a PITR lag fault).
- CloudTrail ``LookupEvents``: not implemented; served from the sandbox's event store, newest first, with
  ``LookupAttributes`` (one attribute, as AWS allows), ``StartTime``/``EndTime`` and ``MaxResults``/``NextToken``.
- RDS ``ModifyDBInstance`` of ``DBInstanceClass`` without ``ApplyImmediately``: moto applies it at once; AWS waits
  for the maintenance window and shows it in ``PendingModifiedValues``, and so does the sandbox.
- ElastiCache ``IncreaseReplicaCount``: not implemented; adds member clusters to the replication group (the
  sandbox's one real Redis stands for all of them).
- ECS ``ListTasks`` of a service and ``StopTask`` of its tasks: moto runs no service tasks (it has no container
  instances). The sandbox's service has one task ARN per running task; stopping one lowers the running count,
  and ECS's scheduler replaces it only after ``REPLACE_AFTER_SECONDS`` (real ECS takes a minute or so).
- RDS ``RebootDBInstance`` and ElastiCache ``TestFailover`` do nothing in moto: the sandbox restarts its real
  primary (status ``rebooting`` meanwhile) or drops its real Redis's client connections, as a failover does.
- FIS: moto moves an experiment through its states but runs none of its actions. The sandbox runs
  ``aws:ecs:stop-task`` on its own service's tasks, and hands ``aws:ecs:task-network-latency`` (to the RDS or
  ElastiCache endpoint named in ``sources``), ``aws:rds:reboot-db-instances``,
  ``aws:elasticache:replicationgroup-interrupt-az-power`` and ``aws:fis:wait`` to :data:`on_fis_action`, which
  makes them faults of its real servers. An experiment with a timed action runs for its ``duration`` (ISO 8601),
  then completes; StopExperiment, or a stop condition's alarm entering ALARM, stops it first. Each ends its faults.
  An action the sandbox cannot run fails the experiment with the reason, as FIS fails one it cannot start.
- CloudWatch ``GetMetricData`` and ``GetMetricStatistics``: moto's answer is right but scans every stored datapoint
  (once per period for GetMetricData: 0.75 s for three series over an hour of 10 s periods beside eight days of
  history). Each query is answered by moto's own code over the datapoints of its metric alone, kept in an index
  that follows what is stored: the same answer, many times faster. And with CloudWatch's dimension matching: exactly
  the query's set, in any order (moto takes any datapoint holding the query's dimensions, and its ordering of
  dimensions is broken). And with its delay (:data:`visibility_delay`): moto shows a datapoint the moment it is
  written, AWS one to three minutes later, so that the latest period of a query is partial or empty. And with its
  periods where AWS puts them (:func:`aws_period_start`), not where moto's first datapoint falls.
- CloudWatch Logs filter patterns (JSON and space-delimited) and Logs Insights ``filter``/``stats``/``sort``: moto
  matches every event or ignores the clause; :mod:`entmoot_ops.sandbox.log_queries` answers them as AWS does.
- IAM enforcement (:func:`enforce_iam`): moto authorises CloudWatch as ``monitoring:Action`` (its signing name),
  where IAM says ``cloudwatch:Action``; and it answers a JSON-protocol client's denial with an XML body, where AWS
  answers ``AccessDeniedException`` in JSON. moto authorises every request against the resource ``*``: a statement
  scoped to ARNs counts as matching, so the sandbox enforces actions and AWS alone enforces the ARNs. Nor does it
  recompute every signature right (REST requests with a query string): the key names the user, botocore signs.
- IAM ``SimulatePrincipalPolicy``: not implemented; answered with moto's own policy evaluation (resource ``*``).
- Logs Insights: moto answers a query at once. Its status follows AWS's course here (Scheduled, Running, then
  Complete, or Failed under a fault); at most 10,000 rows and 30 queries running at once; StopQuery cancels.
- ACM ``DescribeCertificate``: moto writes ``Serial`` as a decimal number, AWS as hex pairs joined by colons
  (``0a:1b:...``), the form ``openssl x509 -serial`` and the suite's TLS checks compare.
- Throttling: moto never throttles. :data:`throttled` makes a service answer ``Rate exceeded`` (``Throttling`` to
  query-protocol clients, ``ThrottlingException`` to JSON ones) for a number of calls.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from types import SimpleNamespace
from datetime import datetime, timedelta, UTC
from typing import Any

from moto.acm.models import CertBundle
from moto.cloudtrail.responses import CloudTrailResponse
from moto.cloudwatch.models import CloudWatchBackend, Dimension, Statistics
from moto.cloudwatch.responses import CloudWatchResponse
from moto.elasticache.exceptions import InvalidParameterValueException, ReplicationGroupNotFound
from moto.elasticache.responses import ElastiCacheResponse
from moto import settings as moto_settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.core.exceptions import _RESTError as XmlRESTError  # the query protocols' error body; moto exports no other name
from moto.iam import access_control
from moto.iam.responses import IamResponse
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.cloudwatch.models import cloudwatch_backends
from moto.elasticache.models import elasticache_backends
from moto.rds.models import rds_backends
from moto.fis.models import FISBackend
from moto.logs import models as logs_models
from moto.logs.responses import LogsResponse
from moto.rds.responses import RDSResponse
from moto.rds.models import DBInstance, RDSBackend

from entmoot_ops.aws_conventions import IAM_PREFIX, period_floor, serial_text
from entmoot_ops.sandbox import log_queries

_installed = False
_lock = threading.Lock()
# CloudTrail events as LookupEvents returns them, with EventTime a datetime (UTC).
trail_events: list[dict[str, Any]] = []
LOOKUP_KEYS = {"EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName", "EventSource", "AccessKeyId"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _get_metric_statistics(self: CloudWatchResponse) -> Any:
    extended = self._get_param("ExtendedStatistics", [])
    if not extended:
        return _original_get_metric_statistics(self)
    statistics = self._get_param("Statistics", [])
    buckets = self.cloudwatch_backend.get_metric_statistics(
        self._get_param("Namespace"), self._get_param("MetricName"), self._get_param("StartTime"),
        self._get_param("EndTime"), self._get_int_param("Period"), statistics or ["SampleCount"],
        unit=self._get_param("Unit"), dimensions=self._get_param("Dimensions", []))
    datapoints = []
    for bucket in buckets:
        values = bucket.metric_single_values_list
        if not values:
            continue
        point: dict[str, Any] = {"Timestamp": bucket.timestamp, "Unit": bucket.unit or "None",
                                 "ExtendedStatistics": {name: percentile(values, float(name[1:])) for name in extended}}
        for name in statistics:
            point[name] = bucket.get_statistics_for_type(name)
        datapoints.append(point)
    return ActionResult({"Label": self._get_param("MetricName"), "Datapoints": datapoints})


class _MetricIndex:
    """moto's stored datapoints by (namespace, metric name). moto only appends to its list, and the sandbox replaces
    the list when it forgets datapoints: the index reads what was appended since, and starts again on a new list."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: list[Any] | None = None
        self._seen = 0
        self._by_metric: dict[tuple[str, str], list[Any]] = {}

    def of(self, backend: CloudWatchBackend, namespace: str, name: str) -> list[Any]:
        with self._lock:
            stored = backend.metric_data
            if stored is not self._source or len(stored) < self._seen:
                self._source, self._seen, self._by_metric = stored, 0, {}
            for datum in stored[self._seen:]:
                self._by_metric.setdefault((datum.namespace, datum.name), []).append(datum)
            self._seen = len(stored)
            return [*self._by_metric.get((namespace, name), ()),
                    *(d for d in backend.aws_metric_data if d.namespace == namespace and d.name == name)]


_index = _MetricIndex()
# CloudWatch's delay: a datapoint becomes readable between these many seconds after its timestamp (AWS: 60 to 150 s
# for its one-minute metrics). Each datapoint keeps its own delay, drawn from its identity, so it never flickers.
visibility_delay = (0.0, 0.0)


def _visible(datum: Any, now: datetime) -> bool:
    low, high = visibility_delay
    if high <= 0:
        return True
    stamp = datum.timestamp if datum.timestamp.tzinfo else datum.timestamp.replace(tzinfo=UTC)
    spread = hash((datum.name, stamp)) % 1000 / 1000
    return stamp <= now - timedelta(seconds=low + (high - low) * spread)


def _view(backend: CloudWatchBackend, namespace: str, name: str, dimensions: list[dict[str, str]] | None) -> SimpleNamespace:
    """The backend as moto's own code sees it, holding only one metric's datapoints, and only those whose dimensions
    are exactly the query's, as CloudWatch matches them: moto matches any datapoint that has the query's
    dimensions among its own (a load balancer's query would add up its zones and target groups too), and in
    GetMetricData it compares them in the order they were written."""
    own = _index.of(backend, namespace, name)
    if dimensions is not None:
        wanted = {(d["Name"], d["Value"]) for d in dimensions}
        own = [d for d in own if {(x.name, x.value) for x in d.dimensions} == wanted]
    now = datetime.now(UTC)
    own = [d for d in own if _visible(d, now)]
    return SimpleNamespace(get_all_metrics=lambda: own)


def _dimension_before(self: Dimension, other: Dimension) -> bool:
    """moto's ordering compares a value with a name: sorting, it leaves dimensions in the order they were written."""
    return (self.name or "", self.value or "") < (other.name or "", other.value or "")


def aws_period_start(start: datetime, period_seconds: int, now: datetime | None = None) -> datetime:
    """Where CloudWatch begins a query's first period: its StartTime rounded down, to the period's own division of a
    minute for a high-resolution period, else to the minute, the 5 minutes or the hour as the start is younger than
    15 days, 63 days or older (AWS's rounding). moto begins where it is asked (GetMetricData) or at the first
    datapoint it holds (GetMetricStatistics), so its periods need not fall where AWS's do."""
    aware = start if start.tzinfo else start.replace(tzinfo=UTC)
    age = (now or datetime.now(UTC)) - aware
    step = period_seconds if period_seconds < 60 else 60 if age < timedelta(days=15) else 300 if age < timedelta(days=63) else 3600
    rounded = period_floor(aware, step)
    return rounded if start.tzinfo else rounded.replace(tzinfo=None)


def _get_metric_data(self: CloudWatchBackend, queries: list[dict[str, Any]], start_time: datetime, end_time: datetime,
                     scan_by: str = "TimestampAscending") -> list[dict[str, Any]]:
    if not queries or not all("MetricStat" in q for q in queries):  # metric math reads other queries' results
        return _original_get_metric_data(self, queries, start_time, end_time, scan_by)
    answers = []
    for query in queries:
        metric = query["MetricStat"]["Metric"]
        start = aws_period_start(start_time, int(query["MetricStat"]["Period"]))
        answers += _original_get_metric_data(_view(self, metric["Namespace"], metric["MetricName"], metric.get("Dimensions", [])),
                                             [query], start, end_time, scan_by)
    return answers


def _backend_get_metric_statistics(self: CloudWatchBackend, namespace: str, metric_name: str, start_time: datetime,
                                   end_time: datetime, period: int, *args: Any, **kwargs: Any) -> Any:
    """moto's answer, its datapoints regrouped into AWS's periods."""
    dimensions = kwargs.get("dimensions", args[1] if len(args) > 1 else None) or []
    start = aws_period_start(start_time, period)
    buckets = _original_backend_get_metric_statistics(_view(self, namespace, metric_name, dimensions), namespace, metric_name,
                                                      start, end_time, period, *args, **kwargs)
    regrouped: dict[int, Statistics] = {}
    for datum in (datum for bucket in buckets for datum in bucket.metric_data):
        index = int((datum.timestamp - start).total_seconds() // period)
        bucket = regrouped.setdefault(index, Statistics(buckets[0].stats, start + timedelta(seconds=index * period)))
        bucket.metric_data.append(datum)
        bucket.unit = datum.unit
    return [regrouped[index] for index in sorted(regrouped)]


REPLACE_AFTER_SECONDS = 10


class ServiceTasks:
    """The running tasks of one ECS service, as ARNs, following the running count the sandbox's scheduler keeps."""

    def __init__(self, cluster: str, service: str, arn_prefix: str):
        self.cluster, self.service, self.arn_prefix = cluster, service, arn_prefix
        self.arns: list[str] = []
        self.stopped: list[tuple[float, str]] = []  # (monotonic time, ARN): replaced REPLACE_AFTER_SECONDS later
        self.on_stop: Any = None  # the scheduler's: lower the running count

    def follow(self, running: int) -> None:
        with _lock:
            while len(self.arns) > running:
                self.arns.pop()
            while len(self.arns) < running:
                self.arns.append(f"{self.arn_prefix}/{self.cluster}/{uuid.uuid4().hex}")

    def awaiting_replacement(self) -> int:
        now = time.monotonic()
        with _lock:
            self.stopped = [(at, arn) for at, arn in self.stopped if now - at < REPLACE_AFTER_SECONDS]
            return len(self.stopped)

    def stop(self, arn: str) -> bool:
        with _lock:
            if arn not in self.arns:
                return False
            self.arns.remove(arn)
            self.stopped.append((time.monotonic(), arn))
        self.on_stop()
        return True


service_tasks: ServiceTasks | None = None
# What the sandbox does when AWS is asked to reboot its database or fail its cache over (set by the supervisor).
on_reboot_db: Any = None
on_cache_failover: Any = None
# (action id, parameters) -> the undo of the fault it made (None: nothing lasts); raises ValueError if it cannot run.
on_fis_action: Any = None
FIS_POLL_SECONDS = 0.5  # how often a running experiment's duration and stop conditions are read, as FIS monitors them


def _list_tasks(self: EC2ContainerServiceResponse) -> Any:
    tasks = service_tasks
    if tasks is not None and self._get_param("serviceName") == tasks.service and self._get_param("cluster") in (
            tasks.cluster, None) and self._get_param("desiredStatus", "RUNNING") == "RUNNING":
        return ActionResult({"taskArns": list(tasks.arns)})
    return _original_list_tasks(self)


def _stop_task(self: EC2ContainerServiceResponse) -> Any:
    arn = self._get_param("task")
    if service_tasks is not None and service_tasks.stop(arn):
        return ActionResult({"task": {"taskArn": arn, "clusterArn": service_tasks.cluster, "lastStatus": "RUNNING",
                                      "desiredStatus": "STOPPED", "group": f"service:{service_tasks.service}",
                                      "stoppedReason": self._get_param("reason") or "Task stopped by user"}})
    return _original_stop_task(self)


def _reboot_db_instance(self: RDSResponse) -> Any:
    answer = _original_reboot_db_instance(self)
    if on_reboot_db is not None:
        on_reboot_db(self.params.get("DBInstanceIdentifier"), str(self.params.get("ForceFailover", False)).lower() == "true")
    return answer


def _test_failover(self: ElastiCacheResponse) -> Any:
    group_id = self._get_param("ReplicationGroupId")
    group = self.elasticache_backend.replication_groups.get(group_id)
    if group is None:
        raise ReplicationGroupNotFound(group_id)
    if on_cache_failover is not None:
        on_cache_failover(group_id)
    return ActionResult({"ReplicationGroup": self.elasticache_backend.describe_replication_groups(group_id)[0]})


def _start_experiment(self: FISBackend, *args: Any, **kwargs: Any) -> Any:
    answer = _original_start_experiment(self, *args, **kwargs)
    experiment = self.experiments[answer["id"]]
    undos: list[Any] = []
    seconds = 0.0
    try:
        for action in experiment.actions.values():
            parameters = action.get("parameters") or {}
            if action.get("actionId") == "aws:ecs:stop-task" and service_tasks is not None:
                share = float(parameters.get("percentage", 34)) / 100
                for arn in list(service_tasks.arns)[:max(1, int(len(service_tasks.arns) * share))]:
                    service_tasks.stop(arn)
                continue
            if on_fis_action is None:
                raise ValueError(f"the sandbox's FIS runs no {action.get('actionId')}")
            undo = on_fis_action(action.get("actionId"), parameters, _named_dependencies(self, parameters.get("sources", "")))
            if undo is not None:
                undos.append(undo)
            seconds = max(seconds, iso_seconds(parameters.get("duration", "PT0S")))
    except ValueError as exc:
        _end_experiment(experiment, undos, "failed", str(exc))
        return experiment.to_dict(tags=kwargs.get("tags") or {})
    if seconds > 0:
        _hold(experiment, "running")
        threading.Thread(target=_monitor, args=(self, experiment, undos, time.monotonic() + seconds), daemon=True,
                         name=f"sandbox-fis-{experiment.id}").start()
    return experiment.to_dict(tags=kwargs.get("tags") or {})


def _named_dependencies(backend: FISBackend, sources: str) -> list[str]:
    """What a network action's ``sources`` name, as the sandbox's servers: an RDS instance's endpoint is its
    primary, an ElastiCache replication group's endpoints its Redis."""
    account, region = backend.account_id, backend.region_name
    databases = {db.address for db in rds_backends[account][region].databases.values() if not db.source_db_instance_identifier}
    caches = {group.get(key) for rg in elasticache_backends[account][region].replication_groups.values() for group in rg.node_groups
              for key in ("primary_endpoint_address", "reader_endpoint_address")}
    named = []
    for source in filter(None, (part.strip() for part in sources.split(","))):
        if source in databases:
            named.append("primary")
        elif source in caches:
            named.append("redis")
        else:
            raise ValueError(f"source {source} is neither an RDS instance's endpoint nor an ElastiCache one (the sandbox's "
                             f"network faults stand between its API and those)")
    return named


def _hold(experiment: Any, status: str, reason: str | None = None) -> None:
    """Keep the experiment at ``status`` whatever moto's state manager would move it to."""
    experiment._transitions = [(status, status)]
    experiment.status = status
    if reason:
        experiment.STATUS_REASONS = {**experiment.STATUS_REASONS, status: reason}


def _end_experiment(experiment: Any, undos: list[Any], status: str, reason: str | None = None) -> None:
    with _lock:
        if experiment.status in experiment.TERMINAL_STATUSES:
            return
        _hold(experiment, status, reason)
    for undo in reversed(undos):
        undo()


def _monitor(backend: FISBackend, experiment: Any, undos: list[Any], ends: float) -> None:
    """The running experiment's life: its duration, StopExperiment, and its alarm stop conditions."""
    alarms = [c["value"].rsplit(":alarm:", 1)[-1] for c in experiment.stop_conditions or []
              if c.get("source") == "aws:cloudwatch:alarm" and c.get("value")]
    while experiment.status not in experiment.TERMINAL_STATUSES:
        watched = cloudwatch_backends[backend.account_id][backend.region_name].alarms
        firing = [name for name in alarms if name in watched and watched[name].state_value == "ALARM"]
        if firing or experiment.status == "stopping":
            reason = f"Experiment stopped by stop condition {firing[0]}" if firing else "Experiment stopped"
            _end_experiment(experiment, undos, "stopped", reason)
        elif time.monotonic() >= ends:
            _end_experiment(experiment, undos, "completed")
        time.sleep(FIS_POLL_SECONDS)


def iso_seconds(duration: str) -> float:
    """An ISO 8601 duration as FIS writes one (``PT5M``, ``PT1H30M``, ``PT90S``), in seconds."""
    found = re.fullmatch(r"PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?", str(duration))
    if not found:
        raise ValueError(f"duration {duration!r} is not an ISO 8601 duration such as PT5M")
    hours, minutes, seconds = (float(part or 0) for part in found.groups())
    return hours * 3600 + minutes * 60 + seconds


def _increase_replica_count(self: ElastiCacheResponse) -> Any:
    group_id = self._get_param("ReplicationGroupId")
    wanted = self._get_int_param("NewReplicaCount")
    group = self.elasticache_backend.replication_groups.get(group_id)
    if group is None:
        raise ReplicationGroupNotFound(group_id)
    if wanted is None or not len(group.member_clusters) - 1 < wanted <= 5:
        raise InvalidParameterValueException(f"NewReplicaCount must be above the current {len(group.member_clusters) - 1} and at most 5")
    while len(group.member_clusters) < wanted + 1:
        group.member_clusters.append(f"{group_id}-{len(group.member_clusters) + 1:03d}")
    return ActionResult({"ReplicationGroup": self.elasticache_backend.describe_replication_groups(group_id)[0]})


def _modify_db_instance(self: RDSBackend, db_instance_identifier: str, db_kwargs: dict[str, Any]) -> Any:
    immediately = str(db_kwargs.get("ApplyImmediately", False)).lower() == "true"
    if "DBInstanceClass" in db_kwargs:
        database = self.describe_db_instances(db_instance_identifier)[0]
        pending = dict(getattr(database, "pending_modified_values", None) or {})
        pending.pop("DBInstanceClass", None)  # an immediate change supersedes one waiting for the window
        if not immediately:
            pending["DBInstanceClass"] = db_kwargs.pop("DBInstanceClass")
        database.pending_modified_values = pending
    return _original_modify_db_instance(self, db_instance_identifier, db_kwargs)


def _latest_restorable_time(self: DBInstance) -> datetime:
    return utcnow() - timedelta(seconds=getattr(self, "sandbox_restore_lag_seconds", 0))


def _lookup_events(self: CloudTrailResponse) -> str:
    body = json.loads(self.body or "{}")
    start = _moment(body.get("StartTime"), datetime.min.replace(tzinfo=UTC))
    end = _moment(body.get("EndTime"), datetime.now(UTC))
    attributes = body.get("LookupAttributes") or []
    if len(attributes) > 1:
        return self._error("InvalidLookupAttributesException", "You can only specify one lookup attribute.")
    attribute = attributes[0] if attributes else None
    if attribute and attribute["AttributeKey"] not in LOOKUP_KEYS:
        return self._error("InvalidLookupAttributesException", f"Unknown attribute key {attribute['AttributeKey']}")
    with _lock:
        matching = [e for e in trail_events if start <= e["EventTime"] <= end
                    and (attribute is None or _attribute_value(e, attribute["AttributeKey"]) == attribute["AttributeValue"])]
    matching.sort(key=lambda e: e["EventTime"], reverse=True)
    size = min(int(body.get("MaxResults") or 50), 50)
    offset = int(body.get("NextToken") or 0)
    page = matching[offset:offset + size]
    answer: dict[str, Any] = {"Events": [{**e, "EventTime": e["EventTime"].timestamp()} for e in page]}
    if offset + size < len(matching):
        answer["NextToken"] = str(offset + size)
    return json.dumps(answer)


def _attribute_value(event: dict[str, Any], key: str) -> str | None:
    if key in ("ResourceType", "ResourceName"):
        return next((r.get(key) for r in event.get("Resources", []) if r.get(key)), None)
    return event.get(key)


def _moment(value: Any, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _error(self: CloudTrailResponse, code: str, message: str) -> Any:
    raise JsonRESTError(code, message)


_original_get_metric_statistics = CloudWatchResponse.get_metric_statistics
_original_get_metric_data = CloudWatchBackend.get_metric_data
_original_backend_get_metric_statistics = CloudWatchBackend.get_metric_statistics
_original_modify_db_instance = RDSBackend.modify_db_instance
_original_list_tasks = EC2ContainerServiceResponse.list_tasks
_original_stop_task = EC2ContainerServiceResponse.stop_task
_original_reboot_db_instance = RDSResponse.reboot_db_instance
_original_start_experiment = FISBackend.start_experiment
_original_start_query = logs_models.LogsBackend.start_query


# Logs Insights' timing, as AWS runs a query: Scheduled, then Running, then Complete (seconds after StartQuery).
# A fault may hold queries Running longer, or end them Failed.
insights_timing = {"scheduled": 0.05, "complete": 0.3}
insights_failing = False
INSIGHTS_CONCURRENCY = 30  # queries running at once per account (AWS's quota)
INSIGHTS_MAX_ROWS = 10_000


class _TimedQuery(logs_models.LogQuery):
    """moto's query, answered when AWS would answer it: moto runs it at once, its status follows the clock."""

    def __init__(self, *args: Any, **kwargs: Any):
        self.started, self.ends, self.stopped = time.monotonic(), insights_timing["complete"], False
        self.fails = insights_failing
        super().__init__(*args, **kwargs)

    @property
    def status(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.stopped:
            return "Cancelled"
        if elapsed < insights_timing["scheduled"]:
            return "Scheduled"
        if elapsed < self.ends:
            return "Running"
        return "Failed" if self.fails else "Complete"

    @status.setter
    def status(self, _: str) -> None:
        """moto sets Running then Complete as it runs the query at once: the clock decides instead."""

    def to_result_json(self) -> dict[str, Any]:
        status = self.status
        rows = self.results[:INSIGHTS_MAX_ROWS] if status == "Complete" else []
        return {"results": [[{"field": k, "value": str(v)} for k, v in row.items()] for row in rows], "status": status,
                "statistics": {"recordsMatched": float(len(self.results)), "recordsScanned": float(len(self.results)),
                               "bytesScanned": 0.0}}


def _start_query(self: Any, *args: Any, **kwargs: Any) -> str:
    running = sum(1 for q in self.queries.values() if q.status in ("Scheduled", "Running"))
    if running >= INSIGHTS_CONCURRENCY:
        raise JsonRESTError("LimitExceededException",
                            f"Account maximum query concurrency limit of [{INSIGHTS_CONCURRENCY}] reached.")
    return _original_start_query(self, *args, **kwargs)


def _stop_query(self: LogsResponse) -> str:
    query = self.logs_backend.queries.get(self._get_param("queryId"))
    if query is None:
        raise JsonRESTError("ResourceNotFoundException", "The specified query does not exist.")
    stoppable = query.status in ("Scheduled", "Running")
    query.stopped = query.stopped or stoppable
    return json.dumps({"success": stoppable})


def _malformed(error: log_queries.QueryError) -> JsonRESTError:
    return JsonRESTError("MalformedQueryException", str(error))


def _execute_query(*args: Any, **kwargs: Any) -> list[dict[str, str]]:
    try:
        return log_queries.execute_query(*args, **kwargs)
    except log_queries.QueryError as exc:
        raise _malformed(exc) from None


class _EventMessageFilter(log_queries.EventMessageFilter):
    def __init__(self, pattern: str):
        try:
            super().__init__(pattern)
        except log_queries.QueryError as exc:
            raise JsonRESTError("InvalidParameterException", f"Invalid filter pattern: {exc}") from None


_original_iam_request_init = access_control.IAMRequestBase.__init__
_original_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action
_original_element_matches = access_control.IAMPolicyStatement._check_element_matches


def _iam_request_init(self: access_control.IAMRequestBase, *args: Any, **kwargs: Any) -> None:
    _original_iam_request_init(self, *args, **kwargs)
    service, _, operation = self._action.partition(":")
    self._action = f"{IAM_PREFIX.get(service, service)}:{operation}"


# Throttling as AWS answers it, per IAM service prefix: how many more calls are refused with "Rate exceeded". The
# sandbox's own key is not throttled: its agent is not the account under test.
throttled: dict[str, int] = {}
unthrottled_key = ""


def _answers_json(response: Any) -> bool:
    """moto answers JSON to JSON-protocol clients, and to CloudWatch's smithy (CBOR) clients too."""
    headers = response.headers
    return "json" in (headers.get("Content-Type") or "") or bool(headers.get("X-Amz-Target") or headers.get("smithy-protocol"))


def _throttle(self: Any) -> None:
    scope = (self.headers.get("Authorization") or "").partition("Credential=")[2].split(",")[0].split("/")
    if len(scope) < 4 or scope[0] == unthrottled_key:
        return
    prefix = IAM_PREFIX.get(scope[3], scope[3])
    with _lock:
        if throttled.get(prefix, 0) <= 0:
            return
        throttled[prefix] -= 1
    if _answers_json(self):
        raise JsonRESTError("ThrottlingException", "Rate exceeded")
    raise XmlRESTError("Throttling", "Rate exceeded")


def _authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
    _throttle(self)
    try:
        _original_authorize(self, iam_request_cls, resource)
    except AccessDeniedError as exc:
        if _answers_json(self):
            raise JsonRESTError("AccessDeniedException", exc.message) from None
        raise


def _element_matches(self: access_control.IAMPolicyStatement, statement_element: Any, value: str) -> bool:
    if statement_element == "Resource" and value == "*":  # moto does not know the request's resource
        return True
    return _original_element_matches(self, statement_element, value)


def _signature_not_recomputed(self: access_control.IAMRequestBase) -> None:
    """moto recomputes SigV4 wrongly for REST requests with a query string (FIS ``ListExperimentTemplates?maxResults=
    100`` reads as SignatureDoesNotMatch). botocore signs correctly; the sandbox authorises by the key's user."""


def _simulate_principal_policy(self: IamResponse) -> Any:
    """IAM's policy simulator for a user or role of the account, on the resource ``*`` as moto authorises: each
    action allowed, or denied implicitly or explicitly."""
    kind, _, name = self._get_param("PolicySourceArn").split(":", 5)[-1].partition("/")
    holder_class = {"user": access_control.IAMUserAccessKey, "role": access_control.AssumedRoleAccessKey}[kind]
    holder = holder_class.__new__(holder_class)  # moto's own gathering of a principal's policies, without a key
    holder.account_id, holder.partition = self.current_account, "aws"
    setattr(holder, "_owner_user_name" if kind == "user" else "_owner_role_name", name.rsplit("/", 1)[-1])
    policies = [access_control.IAMPolicy(policy) for policy in holder.collect_policies()]
    results = []
    for action in self._get_param("ActionNames", []):
        decisions = {policy.is_action_permitted(action, "*") for policy in policies}
        decision = ("explicitDeny" if access_control.PermissionResult.DENIED in decisions else
                    "allowed" if access_control.PermissionResult.PERMITTED in decisions else "implicitDeny")
        results.append({"EvalActionName": action, "EvalResourceName": "*", "EvalDecision": decision})
    return ActionResult({"EvaluationResults": results, "IsTruncated": False})


def enforce_iam(enforced: bool) -> None:
    """From now on, every request is authorised against the policies of the IAM user whose key signed it."""
    moto_settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if enforced else float("inf")
    ActionAuthenticatorMixin.request_count = 0


_describe_certificate = CertBundle.describe


def _aws_serial(self: CertBundle) -> dict[str, Any]:
    described = _describe_certificate(self)
    described["Certificate"]["Serial"] = serial_text(self._cert.serial_number)
    return described


def install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        CloudWatchResponse.get_metric_statistics = _get_metric_statistics
        CertBundle.describe = _aws_serial
        CloudWatchBackend.get_metric_data = _get_metric_data
        CloudWatchBackend.get_metric_statistics = _backend_get_metric_statistics
        Dimension.__lt__ = _dimension_before
        ElastiCacheResponse.increase_replica_count = _increase_replica_count
        ElastiCacheResponse.test_failover = _test_failover
        EC2ContainerServiceResponse.list_tasks = _list_tasks
        EC2ContainerServiceResponse.stop_task = _stop_task
        RDSResponse.reboot_db_instance = _reboot_db_instance
        FISBackend.start_experiment = _start_experiment
        RDSBackend.modify_db_instance = _modify_db_instance
        DBInstance.latest_restorable_time = property(_latest_restorable_time)
        CloudTrailResponse.lookup_events = _lookup_events
        CloudTrailResponse._error = _error
        logs_models.execute_query = _execute_query
        logs_models.EventMessageFilter = _EventMessageFilter
        logs_models.LogQuery = _TimedQuery
        logs_models.LogsBackend.start_query = _start_query
        LogsResponse.stop_query = _stop_query
        access_control.IAMRequestBase.__init__ = _iam_request_init
        access_control.IAMRequestBase.check_signature = _signature_not_recomputed
        IamResponse.simulate_principal_policy = _simulate_principal_policy
        access_control.IAMPolicyStatement._check_element_matches = _element_matches
        ActionAuthenticatorMixin._authenticate_and_authorize_action = _authorize
        _installed = True


def add_trail_events(events: list[dict[str, Any]]) -> list[str]:
    with _lock:
        trail_events.extend(events)
    return [e["EventId"] for e in events]


def remove_trail_events(ids: list[str]) -> None:
    wanted = set(ids)
    with _lock:
        trail_events[:] = [e for e in trail_events if e["EventId"] not in wanted]
