"""The sandbox itself: loopback only, PostgreSQL unprivileged, what it adds to moto, its control interface, its CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, UTC
from pathlib import Path

import boto3
import psycopg
import pytest
import requests
import testinfra

from entmoot_ops.errors import OpsError
from entmoot_ops.sandbox import aws as sandbox_aws
from conftest import ROOT, default_signals


@pytest.fixture
def host():
    return testinfra.get_host("local://")


def test_every_server_listens_on_loopback_only(sandbox, host):
    for name, port in sandbox.state["ports"].items():
        assert host.socket(f"tcp://127.0.0.1:{port}").is_listening, name
        assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening, name


def test_postgres_runs_unprivileged(sandbox, host):
    for server in ("primary", "replica"):
        process = host.process.get(pid=sandbox.pids[server])
        assert process.comm == "postgres"
        assert process.user != "root" or os.geteuid() != 0


def test_primary_and_replica_stream_with_the_entmoot_schema(sandbox):
    with psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_REPLICA1_DSN"]) as replica:
        assert replica.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        assert replica.execute("SELECT count(*) FROM buildings").fetchone()[0] == 20000
        assert replica.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_buildings_location'").fetchone()[0].endswith(
            "USING gist (geom)")
    with psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_PRIMARY_DSN"]) as primary:
        assert "pg_stat_statements" in primary.execute("SHOW shared_preload_libraries").fetchone()[0]


def _aws(sandbox, service):
    return boto3.client(service, endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                        **sandbox_aws.CREDENTIALS)


def test_ecs_rollout_is_settled_and_can_be_held_in_progress(sandbox):
    """moto never rolls out; the sandbox settles the service like ECS, or holds it in progress."""
    def primary():
        service = _aws(sandbox, "ecs").describe_services(cluster="entmoot-sandbox", services=["entmoot-api"])["services"][0]
        return service["runningCount"], service["desiredCount"], service["deployments"][0]["rolloutState"]

    assert primary() == (3, 3, "COMPLETED")
    with sandbox.fault("ecs_stuck_rollout"):
        assert primary() == (2, 3, "IN_PROGRESS")
    assert primary() == (3, 3, "COMPLETED")


def test_agent_publishes_cache_metrics_measured_from_real_redis(sandbox):
    import redis

    client = redis.Redis.from_url(sandbox.env["ENTMOOT_SANDBOX_REDIS_URL"], password=sandbox.env["ENTMOOT_SANDBOX_REDIS_PASSWORD"])
    sandbox.sync()
    start = datetime.now(UTC)
    for i in range(57):
        client.get(f"sandbox:test-miss:{i}")
    sandbox.sync()
    points = _aws(sandbox, "cloudwatch").get_metric_statistics(
        Namespace="AWS/ElastiCache", MetricName="CacheMisses", Dimensions=[{"Name": "CacheClusterId", "Value": sandbox_aws.REDIS_NODE}],
        StartTime=start, EndTime=datetime.now(UTC) + timedelta(seconds=2), Period=1, Statistics=["Sum"])["Datapoints"]
    assert sum(p["Sum"] for p in points) >= 57


def test_agent_publishes_free_storage_from_real_database_size(sandbox):
    with psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_PRIMARY_DSN"]) as primary:
        used = int(primary.execute("SELECT sum(pg_database_size(datname)) FROM pg_database").fetchone()[0])
    sandbox.sync()
    cloudwatch = _aws(sandbox, "cloudwatch")
    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace="AWS/RDS", MetricName="FreeStorageSpace", Dimensions=[{"Name": "DBInstanceIdentifier", "Value": "entmoot-sandbox"}],
        StartTime=now - timedelta(seconds=30), EndTime=now + timedelta(seconds=2), Period=60, Statistics=["Maximum"])["Datapoints"]
    allocated = _aws(sandbox, "rds").describe_db_instances(DBInstanceIdentifier="entmoot-sandbox")["DBInstances"][0]["AllocatedStorage"]
    assert abs(max(p["Maximum"] for p in points) - (allocated * 1024**3 - used)) < 64 * 1024**2


def test_api_writes_access_logs_and_alb_metrics(sandbox):
    token = sandbox.env["ENTMOOT_SANDBOX_API_TOKEN"]
    start = datetime.now(UTC)
    assert requests.get(sandbox.env["ENTMOOT_SANDBOX_API_URL"] + "/api/projects/7", timeout=5).status_code == 401
    assert requests.get(sandbox.env["ENTMOOT_SANDBOX_API_URL"] + "/api/projects/7", timeout=5,
                        headers={"Authorization": f"Bearer {token}"}).json()["id"] == 7
    sandbox.sync()
    events = _aws(sandbox, "logs").filter_log_events(logGroupName=sandbox_aws.LOG_GROUP, filterPattern='{ $.path = "/api/projects/7" }',
                                                     startTime=int(start.timestamp() * 1000))["events"]
    lines = [json.loads(e["message"]) for e in events]  # one JSON object per request
    assert {(line["status"], line["level"]) for line in lines} == {(401, "INFO"), (200, "INFO")}
    assert all(line["request_id"] and line["duration_ms"] >= 0 for line in lines)


def test_response_time_is_the_service_models_not_this_machines(sandbox):
    """The time the load balancer records is the model's (queue turn and injected latency) plus the handler's own
    work: an API process stalled for 2 s (as a busy machine stalls it) serves a 700 ms request late, but records it
    as the 700 ms request it is, so that a check's verdict does not follow the machine's load."""
    api, path = sandbox.pids["api"], "/api/projects/141"  # a project no other test asks for
    headers = {"Authorization": f"Bearer {sandbox.env['ENTMOOT_SANDBOX_API_TOKEN']}"}
    start = datetime.now(UTC)
    with sandbox.fault("api_latency", ms=700):
        with ThreadPoolExecutor(1) as pool:
            asked = time.monotonic()
            answer = pool.submit(requests.get, sandbox.env["ENTMOOT_SANDBOX_API_URL"] + path, headers=headers, timeout=30)
            time.sleep(0.3)  # within the injected latency
            os.kill(api, signal.SIGSTOP)
            try:
                time.sleep(2)
            finally:
                os.kill(api, signal.SIGCONT)
            assert answer.result().status_code == 200
            waited = time.monotonic() - asked
        sandbox.sync()  # read before the fault's undo forgets its requests
        events = _aws(sandbox, "logs").filter_log_events(logGroupName=sandbox_aws.LOG_GROUP, filterPattern=f'{{ $.path = "{path}" }}',
                                                         startTime=int(start.timestamp() * 1000))["events"]
    recorded = [json.loads(e["message"])["duration_ms"] for e in events]
    assert waited >= 2.3 and len(recorded) == 1, (waited, recorded)
    assert 700 <= recorded[0] < 2000, recorded  # the 2 s stall is not in it


def test_forgetting_recent_traffic_leaves_a_window_to_the_next_test(sandbox):
    """What the tests use to judge only their own requests: the last seconds' ALB datapoints, CPU and log lines go;
    the agent's HealthyHostCount and older history stay."""
    headers = {"Authorization": f"Bearer {sandbox.env['ENTMOOT_SANDBOX_API_TOKEN']}"}
    for _ in range(5):
        requests.get(sandbox.env["ENTMOOT_SANDBOX_API_URL"] + "/api/projects/143", headers=headers, timeout=5)
    sandbox.sync()
    since = datetime.now(UTC) - timedelta(seconds=30)
    cloudwatch, elb = _aws(sandbox, "cloudwatch"), _aws(sandbox, "elbv2")
    balancer = {"Name": "LoadBalancer", "Value": elb.describe_load_balancers(
        Names=["entmoot-sandbox"])["LoadBalancers"][0]["LoadBalancerArn"].split(":loadbalancer/", 1)[1]}
    group = {"Name": "TargetGroup", "Value": elb.describe_target_groups(
        Names=["entmoot-api"])["TargetGroups"][0]["TargetGroupArn"].split(":", 5)[5]}

    def recent(metric: str) -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApplicationELB", MetricName=metric, Statistics=["Sum"], Period=60, StartTime=since,
            EndTime=datetime.now(UTC) + timedelta(seconds=1),
            Dimensions=[balancer, group] if metric == "HealthyHostCount" else [balancer])["Datapoints"]
        return sum(p["Sum"] for p in points)

    assert recent("RequestCount") >= 5
    forgotten = sandbox.forget_traffic(30)
    assert forgotten["datapoints"] > 0 and forgotten["log_events"] >= 5, forgotten
    assert recent("RequestCount") == 0
    assert _aws(sandbox, "logs").filter_log_events(logGroupName=sandbox_aws.LOG_GROUP, filterPattern='{ $.path = "/api/projects/143" }',
                                                   startTime=int(since.timestamp() * 1000))["events"] == []
    sandbox.sync()  # the agent goes on publishing
    assert recent("HealthyHostCount") > 0


def test_a_request_held_by_a_fault_at_its_undo_is_forgotten_with_the_fault(sandbox):
    """A request that began under an injected latency ends after the fault's undo: the undo waits for it, so its
    slow response time goes with the fault's traffic instead of turning the next test's p95 red (a false alarm
    the detection matrix once counted)."""
    headers = {"Authorization": f"Bearer {sandbox.env['ENTMOOT_SANDBOX_API_TOKEN']}"}
    path = "/api/projects/144"
    sandbox.sync()
    start = datetime.now(UTC)
    with ThreadPoolExecutor(1) as pool:
        with sandbox.fault("api_latency", ms=1500):
            answer = pool.submit(requests.get, sandbox.env["ENTMOOT_SANDBOX_API_URL"] + path, headers=headers, timeout=30)
            time.sleep(0.3)  # the request is in flight, held by the latency
        assert answer.result().status_code == 200
    sandbox.sync()
    assert _aws(sandbox, "logs").filter_log_events(logGroupName=sandbox_aws.LOG_GROUP, filterPattern=f'{{ $.path = "{path}" }}',
                                                   startTime=int(start.timestamp() * 1000))["events"] == []


def test_metric_history_exists_for_baselines(sandbox):
    now = datetime.now(UTC)
    arn = _aws(sandbox, "elbv2").describe_load_balancers(Names=["entmoot-sandbox"])["LoadBalancers"][0]["LoadBalancerArn"]
    points = _aws(sandbox, "cloudwatch").get_metric_statistics(
        Namespace="AWS/ApplicationELB", MetricName="RequestCount",
        Dimensions=[{"Name": "LoadBalancer", "Value": arn.split(":loadbalancer/")[1]}],
        StartTime=now - timedelta(days=7), EndTime=now - timedelta(days=6), Period=3600, Statistics=["Sum"])["Datapoints"]
    assert len(points) >= 20


def test_control_interface_says_what_is_wrong(sandbox):
    with pytest.raises(OpsError, match="unknown fault 'no_such_fault'"):
        sandbox.inject("no_such_fault")
    with pytest.raises(OpsError, match="fault api_latency is not active"):
        sandbox.undo("api_latency")
    with sandbox.fault("api_latency", ms=50):
        with pytest.raises(OpsError, match="fault api_latency is already active"):
            sandbox.inject("api_latency")
    assert sandbox.control("GET", "state")["faults"] == []


def test_sandbox_up_in_the_foreground_prints_endpoints_and_stops_cleanly(tmp_path):
    state_file = tmp_path / "state.json"
    process = subprocess.Popen([sys.executable, "-m", "entmoot_ops.cli", "sandbox", "up", "--foreground", "--state-file", str(state_file)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    try:
        lines = []
        while not lines or not lines[-1].startswith("# sandbox ready"):
            lines.append(process.stdout.readline().strip())
            assert process.poll() is None, process.stderr.read()
        exports = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
        assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert exports["ENTMOOT_SANDBOX_STATE"] == str(state_file)
        assert {"DATABASE_URL", "REDIS_URL", "REDISCLI_AUTH", "API_URL", "API_TOKEN"} <= exports.keys()
        supervisor = json.loads(state_file.read_text())["pids"]["supervisor"]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(supervisor, 0)
    assert not state_file.exists()


def test_buildings_geom_is_a_postgis_geometry_and_the_default_spatial_query_is_judged(sandbox, run_checks):
    with psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_PRIMARY_DSN"]) as conn:
        (kind,) = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                               "WHERE attrelid = 'buildings'::regclass AND attname = 'geom'").fetchone()
        (version,) = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'").fetchone()
    assert kind == "geometry(Polygon,4326)" and version.startswith("3."), (kind, version)
    assert sandbox.state["postgis"] is True
    run = run_checks("-m", "weekly", "--check", "postgres.spatial-index-used")
    assert run.outcome("postgres.spatial-index-used") == "pass", run.output[-3000:]
    assert "GiST index on buildings.geom in the plan (indexes idx_buildings_location" in " ".join(run.output.split())


def test_alb_metrics_carry_every_dimension_set_aws_publishes(sandbox):
    headers = {"Authorization": f"Bearer {sandbox.env['ENTMOOT_SANDBOX_API_TOKEN']}"}
    for _ in range(3):
        requests.get(sandbox.env["ENTMOOT_SANDBOX_API_URL"] + "/api/projects/7", headers=headers, timeout=5)
    sandbox.sync()
    listed = _aws(sandbox, "cloudwatch").get_paginator("list_metrics").paginate(Namespace="AWS/ApplicationELB")
    sets: dict[str, set[frozenset[str]]] = {}
    for page in listed:
        for metric in page["Metrics"]:
            sets.setdefault(metric["MetricName"], set()).add(frozenset(d["Name"] for d in metric["Dimensions"]))
    balancer, group, zone = "LoadBalancer", "TargetGroup", "AvailabilityZone"
    for name in ("RequestCount", "HTTPCode_Target_2XX_Count", "TargetResponseTime"):
        assert sets[name] == {frozenset({balancer}), frozenset({balancer, group}), frozenset({balancer, zone})}, (name, sets[name])
    assert sets["HealthyHostCount"] == {frozenset({balancer, group}), frozenset({balancer, group, zone})}


def test_undoing_low_storage_leaves_every_period_since_it_healthy(sandbox):
    """Only forgetting the fault's readings left nothing to judge after a fault held longer than the checks' freshness
    window: `sandbox fault undo rds_low_storage`, then an ERROR (no data measured) instead of a pass."""
    period = 5  # the sandbox's CloudWatch period (sandbox.toml)
    began = datetime.now(UTC)
    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        time.sleep(3 * period)  # a few periods under the fault
    ended = datetime.now(UTC)
    allocated = _aws(sandbox, "rds").describe_db_instances(DBInstanceIdentifier="entmoot-sandbox")["DBInstances"][0]["AllocatedStorage"]
    points = _aws(sandbox, "cloudwatch").get_metric_statistics(
        Namespace="AWS/RDS", MetricName="FreeStorageSpace", Dimensions=[{"Name": "DBInstanceIdentifier", "Value": "entmoot-sandbox"}],
        StartTime=began, EndTime=ended, Period=period, Statistics=["Minimum"])["Datapoints"]
    first = datetime.fromtimestamp(-(-began.timestamp() // period) * period, UTC)
    held = {first + timedelta(seconds=period * i) for i in range(int((ended - first).total_seconds()) // period)}
    assert held and held <= {p["Timestamp"] for p in points}, (sorted(held), points)
    assert min(p["Minimum"] for p in points) > 0.5 * allocated * 1024**3, points


@pytest.fixture
def temp_dir():
    """A TMPDIR of the test's own that the PostgreSQL user can reach (pytest's are its user's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="entmoot-test-tmp-"))
    directory.chmod(0o711)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _left_behind(directory: Path) -> list[str]:
    """A sandbox's directories and what is in them (the ports book, shared by every sandbox, stays by design)."""
    return sorted(str(p.relative_to(directory)) for p in directory.glob("entmoot-sandbox-*") for p in (p, *p.rglob("*")))


def test_a_private_sandbox_leaves_nothing_in_the_temp_dir(temp_dir, monkeypatch):
    """Each run that started its own sandbox left its entmoot-sandbox-state-* directory (state, log) behind."""
    from entmoot_ops.sandbox import handle as sandbox_handle

    monkeypatch.setenv("TMPDIR", str(temp_dir))  # the sandbox's own directory too
    monkeypatch.setattr("tempfile.tempdir", str(temp_dir))
    own = sandbox_handle.start()
    own.users = 1
    assert own.state_file.parent.parent == temp_dir
    own.release()
    assert _left_behind(temp_dir) == []


def test_ctrl_c_during_a_sandbox_start_leaves_no_data_directory(tmp_path, temp_dir):
    """SIGINT (Ctrl-C reaches the whole foreground group) while PostgreSQL starts and the supervisor is still being
    imported: the sandbox stops what started and removes its entmoot-sandbox-*/pg."""
    process = subprocess.Popen([sys.executable, "-m", "entmoot_ops.sandbox", "serve", "--state-file", str(tmp_path / "state.json")],
                               env={**os.environ, "TMPDIR": str(temp_dir)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=default_signals)
    try:
        deadline = time.monotonic() + 60
        while not list(temp_dir.glob("entmoot-sandbox-*/pg")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert list(temp_dir.glob("entmoot-sandbox-*/pg")), "the sandbox never began its start"
        process.send_signal(signal.SIGINT)
        process.wait(60)
    finally:
        process.kill()
    assert _left_behind(temp_dir) == []
