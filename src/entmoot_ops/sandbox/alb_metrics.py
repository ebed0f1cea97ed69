"""The ALB's CloudWatch metrics under every dimension set AWS publishes them with.

AWS publishes RequestCount, HTTPCode_Target_* and TargetResponseTime per load balancer, per load balancer and
target group, and per load balancer and Availability Zone; HTTPCode_ELB_* per load balancer and per zone (the load
balancer answered, no target group did); HealthyHostCount per target group and load balancer, and per zone.
CloudWatch matches a query's dimensions exactly, so a check reads only the set it names.
"""

from __future__ import annotations

from typing import Any

ZONES = ("us-east-1a", "us-east-1b")  # the sandbox's two subnets; requests are spread evenly across them
ELB_METRICS = frozenset({"HTTPCode_ELB_5XX_Count", "HTTPCode_ELB_4XX_Count", "HTTPCode_ELB_3XX_Count"})


def dimension_sets(metric: str, load_balancer: str, target_group: str) -> list[tuple[list[dict[str, str]], float]]:
    """Each dimension set of ``metric``, with the share of the load balancer's traffic it counts."""
    balancer = {"Name": "LoadBalancer", "Value": load_balancer}
    group = {"Name": "TargetGroup", "Value": target_group}
    zones = [({"Name": "AvailabilityZone", "Value": zone}, 1 / len(ZONES)) for zone in ZONES]
    if metric == "HealthyHostCount":  # a count of hosts per zone, not a share of traffic
        return [([group, balancer], 1.0)] + [([group, balancer, zone], 1 / len(ZONES)) for zone, _ in zones]
    sets = [([balancer], 1.0)] + [([balancer, zone], share) for zone, share in zones]
    return sets if metric in ELB_METRICS else sets + [([balancer, group], 1.0)]


def datums(metric: dict[str, Any], load_balancer: str, target_group: str) -> list[dict[str, Any]]:
    """One PutMetricData datum (without Dimensions) as AWS would publish it: once per dimension set, its value or
    its counts shared out to each zone."""
    published = []
    for dimensions, share in dimension_sets(metric["MetricName"], load_balancer, target_group):
        datum = {**metric, "Dimensions": dimensions}
        if "Counts" in metric:
            datum["Counts"] = [count * share for count in metric["Counts"]]
        elif share != 1.0:
            datum["Value"] = metric["Value"] * share
        published.append(datum)
    return published
