"""What the sandbox teaches moto: percentiles, LookupEvents, a held-back LatestRestorableTime."""

from __future__ import annotations

from datetime import datetime, timedelta, UTC

import boto3
import pytest
from botocore.exceptions import ClientError

from entmoot_ops.sandbox import aws as sandbox_aws
from entmoot_ops.sandbox.moto_extensions import percentile


def _client(sandbox, service):
    return boto3.client(service, endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                        **sandbox_aws.CREDENTIALS)


def test_nearest_rank_percentile():
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([5.0], 99) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2


def test_extended_statistics_from_stored_values_and_counts(sandbox):
    cloudwatch = _client(sandbox, "cloudwatch")
    now = datetime.now(UTC)
    dims = [{"Name": "Probe", "Value": "percentiles"}]
    cloudwatch.put_metric_data(Namespace="Sandbox/Test", MetricData=[{
        "MetricName": "Latency", "Dimensions": dims, "Timestamp": now, "Values": [0.1, 0.2, 2.0], "Counts": [90, 5, 5]}])
    points = cloudwatch.get_metric_statistics(Namespace="Sandbox/Test", MetricName="Latency", Dimensions=dims,
                                              StartTime=now - timedelta(minutes=1), EndTime=now + timedelta(minutes=1),
                                              Period=120, ExtendedStatistics=["p50", "p95", "p99"])["Datapoints"]
    assert points[0]["ExtendedStatistics"] == {"p50": 0.1, "p95": 0.2, "p99": 2.0}


def test_lookup_events_newest_first_by_attribute_and_paged(sandbox):
    cloudtrail = _client(sandbox, "cloudtrail")
    pages = list(cloudtrail.get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DescribeServices"}], PaginationConfig={"PageSize": 5}))
    events = [e for page in pages for e in page["Events"]]
    assert len(pages) > 1 and len(events) >= 23
    assert {e["EventName"] for e in events} == {"DescribeServices"}
    times = [e["EventTime"] for e in events]
    assert times == sorted(times, reverse=True)
    with pytest.raises(ClientError, match="only specify one lookup attribute"):
        cloudtrail.lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "a"},
                                                   {"AttributeKey": "ReadOnly", "AttributeValue": "true"}])


def test_latest_restorable_time_can_lag(sandbox):
    rds = _client(sandbox, "rds")

    def lag_minutes():
        restorable = rds.describe_db_instances(DBInstanceIdentifier=sandbox_aws.DB_INSTANCE)["DBInstances"][0]["LatestRestorableTime"]
        return (datetime.now(UTC) - restorable).total_seconds() / 60

    assert lag_minutes() < 1
    with sandbox.fault("pitr_lag", minutes=40):
        assert 39 < lag_minutes() < 41


def test_get_metric_data_answers_like_get_metric_statistics(sandbox):
    """The sandbox answers GetMetricData per metric (moto scans everything once per period); same numbers."""
    cloudwatch = _client(sandbox, "cloudwatch")
    now = datetime.now(UTC).replace(microsecond=0)
    dims = [{"Name": "Probe", "Value": "metric-data"}]
    for i, (hits, misses) in enumerate([(5, 1), (7, 2), (11, 3)]):
        cloudwatch.put_metric_data(Namespace="Sandbox/Test", MetricData=[
            {"MetricName": "Hits", "Dimensions": dims, "Timestamp": now - timedelta(seconds=30 * i), "Value": hits},
            {"MetricName": "Misses", "Dimensions": dims, "Timestamp": now - timedelta(seconds=30 * i), "Value": misses}])
    window = {"StartTime": now - timedelta(minutes=5), "EndTime": now + timedelta(minutes=1)}
    answer = cloudwatch.get_metric_data(MetricDataQueries=[
        {"Id": f"m{i}", "MetricStat": {"Metric": {"Namespace": "Sandbox/Test", "MetricName": name, "Dimensions": dims},
                                       "Period": 60, "Stat": "Sum"}} for i, name in enumerate(("Hits", "Misses"))], **window)
    by_id = {r["Id"]: sum(r["Values"]) for r in answer["MetricDataResults"]}
    for query_id, name in (("m0", "Hits"), ("m1", "Misses")):
        points = cloudwatch.get_metric_statistics(Namespace="Sandbox/Test", MetricName=name, Dimensions=dims, Period=60,
                                                  Statistics=["Sum"], **window)["Datapoints"]
        assert by_id[query_id] == sum(p["Sum"] for p in points) == {"Hits": 23, "Misses": 6}[name]


def test_increase_replica_count_adds_member_clusters(sandbox):
    elasticache = _client(sandbox, "elasticache")
    group = sandbox_aws.REDIS_GROUP
    before = elasticache.describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"][0]["MemberClusters"]
    after = elasticache.increase_replica_count(ReplicationGroupId=group, NewReplicaCount=len(before), ApplyImmediately=True)
    assert after["ReplicationGroup"]["MemberClusters"] == [*before, f"{group}-{len(before) + 1:03d}"]
    with pytest.raises(ClientError, match="NewReplicaCount"):
        elasticache.increase_replica_count(ReplicationGroupId=group, NewReplicaCount=6, ApplyImmediately=True)
    # Left with one more replica: harmless, the checks sum CacheHits/CacheMisses over every member and it has none.
