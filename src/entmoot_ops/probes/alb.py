"""Request and error counts of the Application Load Balancer in front of the API, from CloudWatch.

A rate of requests, not a count of log lines: the cost is a handful of GetMetricStatistics calls
whatever the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

from entmoot_ops.clients import Clients
from entmoot_ops.errors import DependencyError
from entmoot_ops.probes import cloudwatch, measuring


def load_balancer_dimension(clients: Clients) -> str:
    """CloudWatch's LoadBalancer dimension is the ARN's suffix, e.g. ``app/entmoot-prod/50dc6c495c0c9188``."""
    name = clients.env.alb.load_balancer

    def lookup() -> str:
        with measuring("AWS ELBv2"):
            found = clients.aws("elbv2").describe_load_balancers(Names=[name])["LoadBalancers"]
        if not found:
            raise DependencyError("AWS ELBv2", f"load balancer {name} not found")
        return found[0]["LoadBalancerArn"].split(":loadbalancer/", 1)[1]

    return clients.remember(("alb.dimension", name), lookup)


@dataclass(frozen=True)
class RequestStats:
    window: str
    requests: float
    target_5xx: float
    elb_5xx: float

    @property
    def errors(self) -> float:
        return self.target_5xx + self.elb_5xx

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def request_stats(clients: Clients, window: cloudwatch.Window) -> RequestStats:
    dims = {"LoadBalancer": load_balancer_dimension(clients)}
    names = ("RequestCount", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count")
    found = cloudwatch.many_series(clients, "AWS/ApplicationELB", [(m, dims) for m in names], "Sum", window)
    total = {name: series.total or 0.0 for name, series in zip(names, found, strict=True)}
    return RequestStats(window=window.describe(), requests=total["RequestCount"],
                        target_5xx=total["HTTPCode_Target_5XX_Count"], elb_5xx=total["HTTPCode_ELB_5XX_Count"])
