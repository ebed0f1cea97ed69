"""Outside the sandbox: an endpoint that answers wrongly costs only the verdicts it touches.

The morning checklist runs through a proxy in front of the sandbox's AWS endpoint that answers every call (or one
operation) as an unkind endpoint does, through a TCP proxy in front of PostgreSQL, Redis or the API that cuts,
stalls or slows them, and against moto's stock server with none of the sandbox's extensions. Whatever the answer:
no INTERNALERROR and no traceback, exit 0 or 1, every selected check reported, and the checks that do not read the
broken dependency keep the verdicts they have on a healthy sandbox.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time

import boto3
import pytest
import requests

from conftest import Run, checks_runner
from entmoot_ops.sandbox.processes import free_port
from unkind_endpoints import AWS_ANSWERS, TCP_FAULTS, AwsAnswers, TcpFault

AWS_ENDPOINT = 'endpoint_url = "env:ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"'
# The line of sandbox.toml that names each dependency, the variable the sandbox exports for it, and its port there.
TCP_TARGETS = {
    "primary": ('primary_dsn = "env:ENTMOOT_SANDBOX_PG_PRIMARY_DSN"', "ENTMOOT_SANDBOX_PG_PRIMARY_DSN", r"port=(\d+)", "PostgreSQL primary"),
    "redis": ('url = "env:ENTMOOT_SANDBOX_REDIS_URL"', "ENTMOOT_SANDBOX_REDIS_URL", r":(\d+)/", "Redis"),
    "api": ('url = "env:ENTMOOT_SANDBOX_API_URL"', "ENTMOOT_SANDBOX_API_URL", r":(\d+)$", ("API", "clock source")),
}
# What a person reads in the ERROR line of an AWS check, per kind of answer.
SAID = {"html_500": "unexpected answer", "empty_200": "unexpected answer", "cut_in_half": "unexpected answer",
        "wrong_shape": "unexpected answer", "throttled": "throttled", "closed": "unreachable", "too_late": "unreachable"}


@pytest.fixture(scope="module")
def healthy(sandbox, tmp_path_factory) -> Run:
    """The morning checklist on the healthy sandbox: the verdicts an unkind endpoint must leave alone."""
    run = checks_runner(sandbox, tmp_path_factory.mktemp("healthy"))("-m", "morning")
    assert run.returncode == 0 and run.results, run.output[-3000:]
    return run


def assert_bounded(run: Run, healthy: Run, spared: set[str]) -> None:
    """No crash, every check reported, the spared checks as on a healthy sandbox, every other one a verdict."""
    assert "INTERNALERROR" not in run.output and "Traceback" not in run.output, run.output[-4000:]
    assert run.returncode in (0, 1), run.output[-3000:]
    assert sorted(r.nodeid for r in run.results) == sorted(r.nodeid for r in healthy.results), run.output[-3000:]
    before = {r.nodeid: r.outcome for r in healthy.results}
    for result in run.results:
        assert result.outcome in ("pass", "fail", "skip", "error"), result
        assert len(result.message.splitlines()) <= 1, result.message
        if result.check_id in spared:
            assert result.outcome == before[result.nodeid], (result, run.output[-3000:])


@pytest.mark.parametrize("answer", AWS_ANSWERS)
def test_an_aws_endpoint_that_answers_wrongly_costs_only_the_aws_checks(answer, sandbox, healthy, environments, run_checks):
    proxy = AwsAnswers(sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], answer)
    try:
        run = run_checks("-m", "morning", "--environments-dir",
                         str(environments(replace={AWS_ENDPOINT: f'endpoint_url = "{proxy.url}"'})))
    finally:
        proxy.close()
    assert proxy.replaced, "the proxy replaced no answer"
    reads_aws = {r.check_id for r in healthy.results if r.aws_actions}
    assert_bounded(run, healthy, spared={r.check_id for r in healthy.results} - reads_aws)
    for result in run.results:
        if result.check_id in reads_aws:
            assert result.outcome == "error" and result.message.startswith("AWS ") and SAID[answer] in result.message, result


def test_an_endpoint_without_the_iam_simulator_passes_the_whole_checklist(sandbox, healthy, environments, run_checks):
    """A stock moto server answers SimulatePrincipalPolicy, which it lacks, with an HTML 500: the preflight's advice
    is all that is lost."""
    proxy = AwsAnswers(sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], "html_500", operation="SimulatePrincipalPolicy")
    try:
        run = run_checks("-m", "morning", "--environments-dir",
                         str(environments(replace={AWS_ENDPOINT: f'endpoint_url = "{proxy.url}"'})))
    finally:
        proxy.close()
    assert proxy.replaced == ["SimulatePrincipalPolicy"]
    assert_bounded(run, healthy, spared={r.check_id for r in healthy.results})
    said = next(line for line in run.output.splitlines() if line.startswith("preflight [sandbox] ok"))
    assert "IAM's policy simulator not asked (AWS IAM refused the request: unexpected answer from AWS IAM " \
           "iam:SimulatePrincipalPolicy" in said, said


@pytest.mark.parametrize("fault", TCP_FAULTS)
@pytest.mark.parametrize("dependency", sorted(TCP_TARGETS))
def test_a_dependency_that_fails_at_the_tcp_level_costs_only_its_checks(dependency, fault, sandbox, healthy, environments, run_checks):
    line, variable, port_pattern, named = TCP_TARGETS[dependency]  # named: how its checks' ERROR lines begin
    value = sandbox.env[variable]
    port = re.search(port_pattern, value).group(1)
    proxy = TcpFault(int(port), fault)
    try:
        directory = environments(replace={line: line.split("=")[0] + '= "env:UNKIND_ENDPOINT"'})
        run = run_checks("-m", "morning", "--environments-dir", str(directory),
                         env={"UNKIND_ENDPOINT": value.replace(port, str(proxy.port))})
    finally:
        proxy.close()
    assert proxy.connections, "nothing went through the proxy"
    reaches = {r.check_id for r in healthy.results if dependency in r.touched}
    assert_bounded(run, healthy, spared={r.check_id for r in healthy.results} - reaches)
    failed = [r for r in run.results if r.outcome == "error"]
    assert failed and all(r.check_id in reaches and r.message.startswith(named) for r in failed), failed


# ------------------------------------------------------------------------------------------- moto's stock server
STOCK_ACCOUNT = {"cluster": "entmoot-sandbox", "service": "entmoot-api", "instance": "entmoot-sandbox",
                 "replica": "entmoot-sandbox-replica", "group": "entmoot-redis-sandbox", "alb": "entmoot-sandbox",
                 "log_group": "/ecs/entmoot-sandbox"}


@pytest.fixture(scope="module")
def stock_moto() -> str:
    """moto's own server, as teams run it for their tests: none of the sandbox's extensions, seeded through the API
    only, as an AWS account would be."""
    port = free_port()
    environment = {**os.environ, "MOTO_PORT": str(port)}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=environment,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            assert time.monotonic() < deadline and server.poll() is None, "moto's server did not start"
            time.sleep(0.1)
        _seed_stock(url)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def _seed_stock(url: str) -> None:
    def client(service: str):
        return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    a = STOCK_ACCOUNT
    ecs = client("ecs")
    ecs.create_cluster(clusterName=a["cluster"])
    definition = ecs.register_task_definition(family="entmoot-api", containerDefinitions=[
        {"name": "api", "image": "entmoot-api:1.4.2", "memory": 512}])["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=a["cluster"], serviceName=a["service"], taskDefinition=definition, desiredCount=3)
    rds = client("rds")
    rds.create_db_instance(DBInstanceIdentifier=a["instance"], DBInstanceClass="db.r6g.large", Engine="postgres",
                           AllocatedStorage=100, MasterUsername="postgres", MasterUserPassword="not-used-here")
    rds.create_db_instance_read_replica(DBInstanceIdentifier=a["replica"], SourceDBInstanceIdentifier=a["instance"])
    client("elasticache").create_replication_group(ReplicationGroupId=a["group"], ReplicationGroupDescription="cache",
                                                   Engine="redis", CacheNodeType="cache.r6g.large", NumCacheClusters=1)
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.30.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
               for i, z in ((1, "a"), (2, "b"))]
    elb = client("elbv2")
    elb.create_load_balancer(Name=a["alb"], Subnets=subnets, Type="application")
    elb.create_target_group(Name="entmoot-api", Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="ip")
    client("logs").create_log_group(logGroupName=a["log_group"])
    cloudwatch = client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="entmoot-api-error-rate", MetricName="HTTPCode_Target_5XX_Count",
                                Namespace="AWS/ApplicationELB", Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName="entmoot-api-error-rate", StateValue="OK", StateReason="seeded")


def test_the_morning_checklist_against_moto_s_stock_server(stock_moto, sandbox, healthy, environments, run_checks):
    """Every check ends PASS, FAIL, SKIP or a one-line ERROR; those that read no AWS keep their verdicts. The table of
    docs/real-environments.md (Endpoints that answer less kindly) lists which checks need what a stock server lacks."""
    # Not the sandbox's kind: the run attaches to nothing, and reads every endpoint from the variables it names.
    directory = environments(replace={AWS_ENDPOINT: f'endpoint_url = "{stock_moto}"', 'kind = "sandbox"': 'kind = "aws"',
                                      "env:ENTMOOT_SANDBOX_": "env:STOCK_SANDBOX_"})
    exported = {name.replace("ENTMOOT_", "STOCK_"): value for name, value in sandbox.env.items() if name.startswith("ENTMOOT_SANDBOX_")}
    run = run_checks("-m", "morning", "--environments-dir", str(directory),
                     env={**exported, "STOCK_SANDBOX_AWS_ACCESS_KEY_ID": "testing", "STOCK_SANDBOX_AWS_SECRET_ACCESS_KEY": "testing"})
    reads_aws = {r.check_id for r in healthy.results if r.aws_actions}
    assert_bounded(run, healthy, spared={r.check_id for r in healthy.results} - reads_aws)
    # What the table of docs/real-environments.md says of a stock server, and every other check as on a healthy sandbox.
    lacking = {"ecs.service-steady": "fail", "rds.free-storage": "error", "redis.evictions": "error",
               "api.error-rate": "skip", "redis.hit-rate": "skip"}
    assert {r.check_id: r.outcome for r in run.results} == {r.check_id: lacking.get(r.check_id, "pass") for r in run.results}, \
        [(r.check_id, r.outcome, r.message) for r in run.results]
