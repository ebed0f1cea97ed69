"""What the sandbox teaches moto: percentiles, LookupEvents, a held-back LatestRestorableTime, and the AWS fault
APIs of the chaos experiments (StopTask, RebootDBInstance, TestFailover, FIS), carried to the real servers."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, UTC
from pathlib import Path

import boto3
import pytest
import redis
from botocore.exceptions import ClientError
from cryptography import x509
from moto import mock_aws
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from redis.backoff import NoBackoff
from redis.retry import Retry

from entmoot_ops.sandbox import aws as sandbox_aws
from entmoot_ops.sandbox import moto_extensions
from entmoot_ops.sandbox.moto_extensions.cloudwatch import aws_period_start, percentile


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


def test_what_the_sandbox_publishes_is_stored_as_put_metric_data_stores_it():
    """The agent and the seeded history publish AWS/* straight into moto's store (Aws.publish), as AWS publishes its
    own metrics: a query must read them as it reads what PutMetricData left (moto keeps timestamps naive, in UTC)."""
    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=sandbox_aws.REGION)
        at = datetime.now(UTC).replace(second=0) - timedelta(minutes=2)
        datum = {"MetricName": "Published", "Dimensions": [{"Name": "Probe", "Value": "publish"}], "Timestamp": at,
                 "Value": 2.5, "Unit": "Count"}
        cloudwatch.put_metric_data(Namespace="Sandbox/Test", MetricData=[datum])
        sandbox_aws.Aws(version="test").publish("Sandbox/Test", [datum])
        through_api, published = get_backend("cloudwatch")[DEFAULT_ACCOUNT_ID][sandbox_aws.REGION].metric_data[-2:]
        assert [(d.timestamp, d.value, d.unit, [(x.name, x.value) for x in d.dimensions]) for d in (published, through_api)] == \
            [(at.replace(tzinfo=None), 2.5, "Count", [("Probe", "publish")])] * 2
        points = cloudwatch.get_metric_statistics(Namespace="Sandbox/Test", MetricName="Published", Dimensions=datum["Dimensions"],
                                                  StartTime=at - timedelta(minutes=1), EndTime=at + timedelta(minutes=1),
                                                  Period=60, Statistics=["SampleCount"])["Datapoints"]
        assert sum(p["SampleCount"] for p in points) == 2


def test_periods_begin_where_aws_begins_them_not_at_the_first_datapoint():
    now = datetime(2026, 12, 5, 7, 1, 25, tzinfo=UTC)
    assert aws_period_start(now, 10, now) == datetime(2026, 12, 5, 7, 1, 20, tzinfo=UTC)
    assert aws_period_start(now, 300, now) == datetime(2026, 12, 5, 7, 1, tzinfo=UTC)
    assert aws_period_start(now - timedelta(days=20), 300, now) == datetime(2026, 11, 15, 7, 0, tzinfo=UTC)
    assert aws_period_start(now - timedelta(days=70), 3600, now) == datetime(2026, 9, 26, 7, 0, tzinfo=UTC)


def test_get_metric_statistics_groups_datapoints_into_aws_periods(sandbox):
    cloudwatch = _client(sandbox, "cloudwatch")
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    dims = [{"Name": "Probe", "Value": "periods"}]
    cloudwatch.put_metric_data(Namespace="Sandbox/Test", MetricData=[
        {"MetricName": "Requests", "Dimensions": dims, "Timestamp": minute + timedelta(seconds=s), "Value": 1.0}
        for s in (20, 50, 80)])
    asked = {"Namespace": "Sandbox/Test", "MetricName": "Requests", "Dimensions": dims, "Period": 60}
    # moto began its first period at the first datapoint (:20); AWS rounds StartTime (:10) down to the minute.
    points = cloudwatch.get_metric_statistics(**asked, StartTime=minute + timedelta(seconds=10),
                                              EndTime=minute + timedelta(minutes=3), Statistics=["Sum"])["Datapoints"]
    assert sorted((p["Timestamp"], p["Sum"]) for p in points) == [(minute, 2.0), (minute + timedelta(minutes=1), 1.0)]
    data = cloudwatch.get_metric_data(StartTime=minute + timedelta(seconds=10), EndTime=minute + timedelta(minutes=3), MetricDataQueries=[
        {"Id": "m", "MetricStat": {"Metric": {k: asked[k] for k in ("Namespace", "MetricName", "Dimensions")}, "Period": 60, "Stat": "Sum"}}])
    result = data["MetricDataResults"][0]
    assert sorted(zip(result["Timestamps"], result["Values"], strict=True)) == [(minute, 2.0), (minute + timedelta(minutes=1), 1.0)]


def test_increase_replica_count_adds_member_clusters(sandbox):
    elasticache = _client(sandbox, "elasticache")
    group = sandbox_aws.REDIS_GROUP
    before = elasticache.describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"][0]["MemberClusters"]
    after = elasticache.increase_replica_count(ReplicationGroupId=group, NewReplicaCount=len(before), ApplyImmediately=True)
    assert after["ReplicationGroup"]["MemberClusters"] == [*before, f"{group}-{len(before) + 1:03d}"]
    with pytest.raises(ClientError, match="NewReplicaCount"):
        elasticache.increase_replica_count(ReplicationGroupId=group, NewReplicaCount=6, ApplyImmediately=True)
    # Left with one more replica: harmless, the checks sum CacheHits/CacheMisses over every member and it has none.


def _service(sandbox) -> dict:
    return _client(sandbox, "ecs").describe_services(cluster=sandbox_aws.CLUSTER, services=[sandbox_aws.SERVICE])["services"][0]


def _wait(predicate, timeout: float = 30) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "not reached in time"
        time.sleep(0.2)
    return time.monotonic() - started


def test_service_tasks_listed_stopped_and_replaced_after_a_delay(sandbox):
    ecs = _client(sandbox, "ecs")
    tasks = ecs.list_tasks(cluster=sandbox_aws.CLUSTER, serviceName=sandbox_aws.SERVICE)["taskArns"]
    assert len(tasks) == _service(sandbox)["runningCount"] == 3 and all(":task/entmoot-sandbox/" in t for t in tasks)
    stopped = ecs.stop_task(cluster=sandbox_aws.CLUSTER, task=tasks[0], reason="chaos test")["task"]
    assert stopped["desiredStatus"] == "STOPPED" and stopped["stoppedReason"] == "chaos test"
    assert _service(sandbox)["runningCount"] == 2
    assert tasks[0] not in ecs.list_tasks(cluster=sandbox_aws.CLUSTER, serviceName=sandbox_aws.SERVICE)["taskArns"]
    replaced_after = _wait(lambda: _service(sandbox)["runningCount"] == 3)
    assert replaced_after > moto_extensions.services.REPLACE_AFTER_SECONDS - 2, replaced_after
    with pytest.raises(ClientError):  # an ARN that is not one of the service's: moto's own answer
        ecs.stop_task(cluster=sandbox_aws.CLUSTER, task="arn:aws:ecs:us-east-1:123456789012:task/entmoot-sandbox/nope")


def test_reboot_db_instance_restarts_the_real_primary(sandbox):
    rds = _client(sandbox, "rds")
    before = sandbox.pids["primary"]
    rds.reboot_db_instance(DBInstanceIdentifier=sandbox_aws.DB_INSTANCE, ForceFailover=True)
    status = lambda: rds.describe_db_instances(DBInstanceIdentifier=sandbox_aws.DB_INSTANCE)["DBInstances"][0]["DBInstanceStatus"]  # noqa: E731
    assert status() == "rebooting"
    _wait(lambda: status() == "available")
    assert sandbox.pids["primary"] not in (None, before)


def test_test_failover_drops_the_clients_of_the_real_redis(sandbox):
    client = redis.Redis.from_url(sandbox.env["ENTMOOT_SANDBOX_REDIS_URL"], password=sandbox.env["ENTMOOT_SANDBOX_REDIS_PASSWORD"],
                                  retry=Retry(NoBackoff(), 0))
    client.set("failover-test", "kept")
    before = client.client_id()
    group = _client(sandbox, "elasticache").test_failover(ReplicationGroupId=sandbox_aws.REDIS_GROUP, NodeGroupId="0001")
    assert group["ReplicationGroup"]["ReplicationGroupId"] == sandbox_aws.REDIS_GROUP
    # redis-py finds its socket closed and connects again: a new connection, the same data.
    assert client.client_id() != before and client.get("failover-test") == b"kept"


def test_fis_experiment_runs_its_stop_task_action(sandbox):
    fis = _client(sandbox, "fis")
    template = next(t for t in fis.list_experiment_templates()["experimentTemplates"]
                    if t["tags"].get("Name") == sandbox_aws.FIS_STOP_TASKS)
    experiment = fis.start_experiment(experimentTemplateId=template["id"], clientToken="moto-extension-test")["experiment"]
    assert _service(sandbox)["runningCount"] == 2  # 34% of 3 tasks: one stopped
    assert fis.get_experiment(id=experiment["id"])["experiment"]["state"]["status"] in ("initiating", "running")
    fis.stop_experiment(id=experiment["id"])
    _wait(lambda: fis.get_experiment(id=experiment["id"])["experiment"]["state"]["status"] == "stopped")
    _wait(lambda: _service(sandbox)["runningCount"] == 3)


def test_acm_writes_a_serial_as_aws_does(sandbox):
    """Hex pairs joined by colons, as ``openssl x509 -serial`` and AWS write it; moto writes a decimal number."""
    arn = _client(sandbox, "elbv2").describe_listeners(LoadBalancerArn=_client(sandbox, "elbv2").describe_load_balancers(
        Names=["entmoot-sandbox"])["LoadBalancers"][0]["LoadBalancerArn"])["Listeners"][0]["Certificates"][0]["CertificateArn"]
    serial = _client(sandbox, "acm").describe_certificate(CertificateArn=arn)["Certificate"]["Serial"]
    served = x509.load_pem_x509_certificate(Path(sandbox.state["root"], "tls", "api.pem").read_bytes()).serial_number
    assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2})+", serial) and int(serial.replace(":", ""), 16) == served, serial
