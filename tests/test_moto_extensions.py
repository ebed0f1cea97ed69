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
