"""CloudWatch alarms and metric statistics.

CloudWatch returns datapoints in no particular order; everything here sorts by timestamp before it reads
"latest", and reports "no datapoints" as ``None`` rather than zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import math
import time
from datetime import datetime, timedelta, UTC

from entmoot_ops.aws_conventions import period_ceil, period_floor
from entmoot_ops.clients import Clients
from entmoot_ops.probes import measuring
from entmoot_ops import iam
from entmoot_ops.iam import needs


@dataclass(frozen=True)
class Alarm:
    name: str
    kind: str  # metric or composite
    state: str  # OK, ALARM, INSUFFICIENT_DATA
    reason: str
    since: datetime | None
    actions_enabled: bool


def alarms(clients: Clients) -> tuple[Alarm, ...]:
    """Every alarm in the account and region, metric and composite, all pages; read once per run."""
    return clients.remember("cloudwatch.alarms", lambda: _alarms(clients))


@needs("cloudwatch:DescribeAlarms", resources=iam.ALARMS)
def _alarms(clients: Clients) -> tuple[Alarm, ...]:
    found: list[Alarm] = []
    with measuring("AWS CloudWatch"):
        paginator = clients.aws("cloudwatch").get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
            for kind, key in (("metric", "MetricAlarms"), ("composite", "CompositeAlarms")):
                for raw in page.get(key, []):
                    found.append(Alarm(
                        name=raw["AlarmName"],
                        kind=kind,
                        state=raw["StateValue"],
                        reason=raw.get("StateReason", ""),
                        since=raw.get("StateUpdatedTimestamp"),
                        actions_enabled=raw.get("ActionsEnabled", True),
                    ))
    return tuple(sorted(found, key=lambda a: a.name))


@needs("cloudwatch:DescribeAlarms", resources=iam.ALARMS)
def alarm_states(clients: Clients, names: Sequence[str]) -> dict[str, str]:
    """The state of each named alarm, metric or composite, read now (never remembered: a stop condition is polled);
    an alarm that does not exist is absent."""
    found: dict[str, str] = {}
    with measuring("AWS CloudWatch"):
        for start in range(0, len(names), 100):  # DescribeAlarms takes at most 100 names
            pages = clients.aws("cloudwatch").get_paginator("describe_alarms").paginate(
                AlarmNames=list(names[start:start + 100]), AlarmTypes=["MetricAlarm", "CompositeAlarm"])
            for page in pages:
                for raw in (*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])):
                    found[raw["AlarmName"]] = raw["StateValue"]
    return found


@dataclass(frozen=True)
class Window:
    """Whole periods. CloudWatch's period in progress is partial (its datapoints still arriving, one to three minutes
    late on AWS): a window built here ends where the last period that has ended ends, so no check judges it."""

    start: datetime
    end: datetime
    period_seconds: int

    @classmethod
    def last(cls, minutes: float, period_seconds: int) -> Window:
        end = period_floor(datetime.now(UTC), period_seconds)
        return cls(start=period_floor(end - timedelta(minutes=minutes), period_seconds), end=end, period_seconds=period_seconds)

    @classmethod
    def since(cls, moment: datetime, period_seconds: int) -> Window:
        """The periods that began at or after a moment and have ended: a period begun before it would take in what
        happened just before (a deployment's start, say). Until one has ended, the first one, partial."""
        start = period_ceil(moment, period_seconds)
        end = max(period_floor(datetime.now(UTC), period_seconds), start + timedelta(seconds=period_seconds))
        return cls(start=start, end=end, period_seconds=period_seconds)

    @classmethod
    def during(cls, start: datetime, end: datetime, period_seconds: int) -> Window:
        """The periods that overlap a span (a load run, say), to the end of the one it ended in."""
        return cls(start=period_floor(start, period_seconds), end=max(period_ceil(end, period_seconds), start + timedelta(seconds=1)),
                   period_seconds=period_seconds)

    def wait_until_ended(self) -> None:
        """Until the window's last period has ended (at most one period from now), so that none is judged partial."""
        time.sleep(max(0.0, (self.end - datetime.now(UTC)).total_seconds()))

    @property
    def complete(self) -> bool:
        return self.end <= datetime.now(UTC)

    def describe(self) -> str:
        seconds = (self.end - self.start).total_seconds()
        span = f"{seconds:.0f} s" if seconds < 120 else f"{round(seconds / 60)} min"
        partial = "" if self.complete else ", partial"
        return f"{self.start:%Y-%m-%dT%H:%M:%SZ}..{self.end:%H:%M:%SZ} ({span}{partial})"


@dataclass(frozen=True)
class Series:
    namespace: str
    metric: str
    statistic: str
    points: tuple[tuple[datetime, float], ...]  # oldest first

    @property
    def total(self) -> float | None:
        return sum(value for _, value in self.points) if self.points else None

    @property
    def latest(self) -> tuple[datetime, float] | None:
        return self.points[-1] if self.points else None

    def latest_period(self, period_seconds: int, now: datetime | None = None) -> Reading | None:
        """The newest period that has ended and holds data (the latest periods are often empty: AWS's delay). A
        window from :class:`Window` holds only periods that have ended; one built by hand may hold the current,
        partial period, which is judged only where no complete period of it holds data, and then said partial."""
        ended = (now or datetime.now(UTC)) - timedelta(seconds=period_seconds)
        complete = next((point for point in reversed(self.points) if point[0] <= ended), None)
        if complete is not None:
            return Reading(*complete, period_seconds, complete=True)
        return Reading(*self.points[-1], period_seconds, complete=False) if self.points else None


@dataclass(frozen=True)
class Reading:
    """One period's value, and which period it was."""

    start: datetime
    value: float
    period_seconds: int
    complete: bool

    def describe(self) -> str:
        """``22:14:00–22:14:10Z``, or ``22:14:10–22:14:20Z, partial``."""
        end = self.start + timedelta(seconds=self.period_seconds)
        return f"{self.start:%H:%M:%S}–{end:%H:%M:%SZ}{'' if self.complete else ', partial'}"


@needs("cloudwatch:GetMetricStatistics")
def series(clients: Clients, namespace: str, metric: str, dimensions: dict[str, str], statistic: str, window: Window) -> Series:
    with measuring("AWS CloudWatch"):
        answer = clients.aws("cloudwatch").get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            StartTime=window.start,
            EndTime=window.end,
            Period=window.period_seconds,
            Statistics=[statistic],
        )
    points = sorted((p["Timestamp"], float(p[statistic])) for p in answer.get("Datapoints", []))
    return Series(namespace=namespace, metric=metric, statistic=statistic, points=tuple(points))


@needs("cloudwatch:GetMetricData")
def many_series(clients: Clients, namespace: str, metrics: list[tuple[str, dict[str, str]]], statistic: str,
                window: Window) -> list[Series]:
    """Several series of one window in one GetMetricData call (paged), in the order asked."""
    queries = [{"Id": f"m{i}", "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()]},
        "Period": window.period_seconds, "Stat": statistic}} for i, (metric, dims) in enumerate(metrics)]
    points: dict[str, list[tuple[datetime, float]]] = {q["Id"]: [] for q in queries}
    with measuring("AWS CloudWatch"):
        paginator = clients.aws("cloudwatch").get_paginator("get_metric_data")
        for page in paginator.paginate(MetricDataQueries=queries, StartTime=window.start, EndTime=window.end):
            for result in page.get("MetricDataResults", []):
                points[result["Id"]] += zip(result.get("Timestamps", []), (float(v) for v in result.get("Values", [])), strict=True)
    return [Series(namespace=namespace, metric=metric, statistic=statistic, points=tuple(sorted(points[f"m{i}"])))
            for i, (metric, _) in enumerate(metrics)]


def _percentiles(clients: Clients, namespace: str, metric: str, dimensions: dict[str, str], name: str, window: Window,
                 period: int) -> list[tuple[datetime, float]]:
    with measuring("AWS CloudWatch"):
        answer = clients.aws("cloudwatch").get_metric_statistics(
            Namespace=namespace, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            StartTime=window.start, EndTime=window.end, Period=period, ExtendedStatistics=[name])
    return sorted((p["Timestamp"], float(p["ExtendedStatistics"][name])) for p in answer.get("Datapoints", [])
                  if name in p.get("ExtendedStatistics", {}))


@needs("cloudwatch:GetMetricStatistics")
def percentile(clients: Clients, namespace: str, metric: str, dimensions: dict[str, str], percent: float,
               window: Window) -> float | None:
    """One percentile over the whole window (a single period spanning it), or None without datapoints."""
    seconds = (window.end - window.start).total_seconds()
    period = window.period_seconds * max(1, math.ceil(seconds / window.period_seconds))
    values = [value for _, value in _percentiles(clients, namespace, metric, dimensions, f"p{percent:g}", window, period)]
    return max(values) if values else None


@needs("cloudwatch:GetMetricStatistics")
def percentile_series(clients: Clients, namespace: str, metric: str, dimensions: dict[str, str], percent: float,
                      window: Window) -> Series:
    """One percentile per period of the window."""
    name = f"p{percent:g}"
    points = _percentiles(clients, namespace, metric, dimensions, name, window, window.period_seconds)
    return Series(namespace=namespace, metric=metric, statistic=name, points=tuple(points))
