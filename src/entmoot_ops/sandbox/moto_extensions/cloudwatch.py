"""CloudWatch as AWS answers it: percentiles, fast per-metric queries, exact dimension sets, the delay before a
datapoint is readable, AWS's period starts; and ACM's certificate serial in AWS's form."""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace
from datetime import datetime, timedelta, UTC
from typing import Any

from moto.acm.models import CertBundle
from moto.cloudwatch.models import CloudWatchBackend, Dimension, Statistics
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult

from entmoot_ops.aws_conventions import period_floor, serial_text


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


_original_get_metric_statistics = CloudWatchResponse.get_metric_statistics


_original_get_metric_data = CloudWatchBackend.get_metric_data


_original_backend_get_metric_statistics = CloudWatchBackend.get_metric_statistics


_describe_certificate = CertBundle.describe


def _aws_serial(self: CertBundle) -> dict[str, Any]:
    described = _describe_certificate(self)
    described["Certificate"]["Serial"] = serial_text(self._cert.serial_number)
    return described


def install() -> None:
    CloudWatchResponse.get_metric_statistics = _get_metric_statistics
    CertBundle.describe = _aws_serial
    CloudWatchBackend.get_metric_data = _get_metric_data
    CloudWatchBackend.get_metric_statistics = _backend_get_metric_statistics
    Dimension.__lt__ = _dimension_before
