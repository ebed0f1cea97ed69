"""Request and error counts of the Application Load Balancer in front of the API, from CloudWatch.

A rate of requests, not a count of log lines: the cost is a handful of GetMetricStatistics calls
whatever the traffic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, UTC

from entmoot_ops.clients import Clients
from entmoot_ops.errors import DependencyError
from entmoot_ops.probes import cloudwatch, measuring
from entmoot_ops.progress import Progress
from entmoot_ops.iam import needs


_RESOURCES = {  # kind: (ELBv2 describe call, its list, the ARN field)
    "load balancer": ("describe_load_balancers", "LoadBalancers", "LoadBalancerArn"),
    "target group": ("describe_target_groups", "TargetGroups", "TargetGroupArn"),
}


@needs("elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTargetGroups")
def _arn(clients: Clients, kind: str, name: str) -> str:
    operation, listed, field = _RESOURCES[kind]

    def lookup() -> str:
        with measuring("AWS ELBv2"):
            found = getattr(clients.aws("elbv2"), operation)(Names=[name])[listed]
        if not found:
            raise DependencyError("AWS ELBv2", f"{kind} {name} not found")
        return found[0][field]

    return clients.remember(("alb.arn", kind, name), lookup)


def _dimension(clients: Clients, kind: str, name: str) -> str:
    """CloudWatch names a load balancer or target group by its ARN's resource part: ``app/entmoot-prod/50dc6c49``
    for a load balancer, ``targetgroup/entmoot-api/73e2d6bc`` for a target group."""
    return _arn(clients, kind, name).split(":", 5)[5].removeprefix("loadbalancer/")


def load_balancer_arn(clients: Clients) -> str:
    return _arn(clients, "load balancer", clients.env.alb.load_balancer)


def load_balancer_dimension(clients: Clients) -> str:
    return _dimension(clients, "load balancer", clients.env.alb.load_balancer)


def target_group_dimension(clients: Clients) -> str:
    return _dimension(clients, "target group", clients.env.alb.target_group)


def api_dimensions(clients: Clients) -> dict[str, str]:
    """The API's own traffic: its target group behind the load balancer. AWS publishes RequestCount,
    HTTPCode_Target_* and TargetResponseTime per load balancer too, which would count every target group's."""
    return {"LoadBalancer": load_balancer_dimension(clients), "TargetGroup": target_group_dimension(clients)}


def _traffic(clients: Clients, window: cloudwatch.Window) -> tuple[cloudwatch.Series, cloudwatch.Series, cloudwatch.Series]:
    """The API's requests and target 5XX (its target group), and the load balancer's own 5XX (no target group
    answered those: AWS publishes them per load balancer only)."""
    api, balancer = api_dimensions(clients), {"LoadBalancer": load_balancer_dimension(clients)}
    requests, target, elb = cloudwatch.many_series(clients, "AWS/ApplicationELB", [
        ("RequestCount", api), ("HTTPCode_Target_5XX_Count", api), ("HTTPCode_ELB_5XX_Count", balancer)], "Sum", window)
    return requests, target, elb


@dataclass(frozen=True)
class RequestStats:
    window: str
    requests: float  # that reached the API's target group
    target_5xx: float
    elb_5xx: float  # answered by the load balancer itself: never reached a target, so not in ``requests``

    @property
    def errors(self) -> float:
        return self.target_5xx + self.elb_5xx

    @property
    def error_rate(self) -> float | None:
        asked = self.requests + self.elb_5xx
        return self.errors / asked if asked else None


def request_stats(clients: Clients, window: cloudwatch.Window) -> RequestStats:
    requests, target, elb = _traffic(clients, window)
    return RequestStats(window=window.describe(), requests=requests.total or 0.0, target_5xx=target.total or 0.0,
                        elb_5xx=elb.total or 0.0)


@dataclass(frozen=True)
class TrafficWait:
    stats: RequestStats
    window: cloudwatch.Window
    waited_seconds: float


def wait_for_requests(clients: Clients, since: datetime, minimum: float, timeout_seconds: float, poll_seconds: float) -> TrafficWait:
    """The API's requests in the periods since a moment, polled until at least ``minimum`` are counted or
    ``timeout_seconds`` after the moment: a period is judged once it has ended, and its datapoints arrive later still
    (1 to 3 minutes on AWS), so right after a deployment there is nothing yet to judge; long after it, waiting
    brings nothing more. The last reading is returned either way."""
    started = time.monotonic()
    deadline = since + timedelta(seconds=timeout_seconds)
    progress = Progress(f"waiting for {minimum:g} requests since {since:%H:%M:%SZ} in CloudWatch (until {deadline:%H:%M:%SZ})")
    while True:
        window = cloudwatch.Window.since(since, clients.env.thresholds.metric_period_seconds)
        stats = request_stats(clients, window)
        if stats.requests >= minimum or datetime.now(UTC) + timedelta(seconds=poll_seconds) > deadline:
            return TrafficWait(stats, window, round(time.monotonic() - started, 1))
        progress(f"{stats.requests:.0f} so far in {window.describe()}")
        time.sleep(poll_seconds)


@dataclass(frozen=True)
class ErrorPeriods:
    """Requests and 5XX per period, oldest first: when errors began, not only how many there were."""

    window: str
    period_seconds: int
    periods: tuple[tuple[datetime, float, float], ...]  # (period start, requests, 5XX)

    def onset(self, rate_above: float) -> datetime | None:
        """The start of the most recent run of periods whose 5XX rate is above ``rate_above``."""
        onset = None
        for start, requests, errors in reversed(self.periods):
            above = requests > 0 and errors / requests > rate_above
            if above:
                onset = start
            elif onset is not None:
                break
        return onset

    def healthy_between(self, start: datetime, end: datetime, rate_above: float) -> int:
        """Periods with traffic and a 5XX rate at or below ``rate_above`` that began in [start, end)."""
        return sum(1 for at, requests, errors in self.periods if start <= at < end and requests > 0 and errors / requests <= rate_above)

    @property
    def requests(self) -> float:
        return sum(requests for _, requests, _ in self.periods)

    @property
    def errors(self) -> float:
        return sum(errors for _, _, errors in self.periods)


def error_periods(clients: Clients, window: cloudwatch.Window) -> ErrorPeriods:
    requests, target, elb = (dict(series.points) for series in _traffic(clients, window))
    periods = tuple((start, requests.get(start, 0.0) + elb.get(start, 0.0), target.get(start, 0.0) + elb.get(start, 0.0))
                    for start in sorted(requests.keys() | elb.keys()))
    return ErrorPeriods(window=window.describe(), period_seconds=window.period_seconds, periods=periods)


@dataclass(frozen=True)
class HostLoad:
    """Requests per period against the healthy targets that served them: the runbook's "request queue depth"."""

    window: str
    period_seconds: int
    periods: tuple[tuple[datetime, float, float | None], ...]  # (period start, requests, fewest healthy hosts)

    @property
    def peak_rps_per_host(self) -> float | None:
        rates = [requests / self.period_seconds / hosts for _, requests, hosts in self.periods if hosts]
        return max(rates) if rates else None


def host_load(clients: Clients, window: cloudwatch.Window) -> HostLoad:
    api = api_dimensions(clients)
    (requests,) = cloudwatch.many_series(clients, "AWS/ApplicationELB", [("RequestCount", api)], "Sum", window)
    (hosts,) = cloudwatch.many_series(clients, "AWS/ApplicationELB", [("HealthyHostCount", api)], "Minimum", window)

    def healthy_at(moment: datetime) -> float | None:
        # Two series need not share period starts: the host count of the period nearest in time.
        near = [(abs((at - moment).total_seconds()), value) for at, value in hosts.points]
        return min(near)[1] if near and min(near)[0] < window.period_seconds else None

    return HostLoad(window=window.describe(), period_seconds=window.period_seconds,
                    periods=tuple((start, count, healthy_at(start)) for start, count in requests.points))
