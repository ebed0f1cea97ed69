"""The sandbox's AWS account as it starts: ECR, ECS, RDS and its replica, snapshots, ElastiCache, the ALB, the
log group, alarms, FIS templates, ACM, eight days of metric history and a CloudTrail trail."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, UTC


from entmoot_ops.sandbox import alb_metrics, moto_extensions
from entmoot_ops.sandbox.aws import (ACCOUNT, ALARMS, ALB, ALLOCATED_GIB, CLUSTER, DB_INSTANCE, DB_REPLICA, DEPLOY_ROLE, DESIRED,
                                     ECR_REPO, FIS_RDS_LATENCY, FIS_STOP_TASKS, LOG_GROUP, MONITOR_ROLE, REDIS_GROUP, REDIS_NODE,
                                     REGION, SEEDED_CLASS, SERVICE, Aws, moto_backend, trail_event)



# ----------------------------------------------------------------------------------------------- seed
def seed(aws: Aws) -> None:
    aws.client("ecr").create_repository(repositoryName=ECR_REPO)
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=aws.register_version(aws.version),
                       desiredCount=DESIRED)
    while aws.settle_service():
        pass
    # The running release was deployed an hour ago, as in a real environment: the traffic history seeded below
    # is its, and a deploy gate run now judges it instead of waiting for traffic since the sandbox started.
    for deployment in moto_backend("ecs").services[f"{CLUSTER}:{SERVICE}"].deployments:
        deployment["createdAt"] = deployment["createdAt"] - timedelta(hours=1)

    rds = aws.client("rds")
    rds.create_db_instance(DBInstanceIdentifier=DB_INSTANCE, DBInstanceClass=SEEDED_CLASS, Engine="postgres",
                           EngineVersion="15.8", AllocatedStorage=ALLOCATED_GIB, MaxAllocatedStorage=500,
                           MasterUsername="postgres", MasterUserPassword="not-used-here", BackupRetentionPeriod=7,
                           MultiAZ=True)
    rds.create_db_instance_read_replica(DBInstanceIdentifier=DB_REPLICA, SourceDBInstanceIdentifier=DB_INSTANCE)
    seed_snapshots(aws)

    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
               for i, z in ((1, "a"), (2, "b"))]
    elb = aws.client("elbv2")
    arn = elb.create_load_balancer(Name=ALB, Subnets=subnets, Type="application")["LoadBalancers"][0]["LoadBalancerArn"]
    aws.alb_dimension = arn.split(":loadbalancer/", 1)[1]
    group = elb.create_target_group(Name="entmoot-api", Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="ip")
    aws.target_group_dimension = group["TargetGroups"][0]["TargetGroupArn"].split(":", 5)[5]
    aws.load_balancer_arn, aws.target_group_arn = arn, group["TargetGroups"][0]["TargetGroupArn"]

    aws.client("logs").create_log_group(logGroupName=LOG_GROUP)
    aws.client("elasticache").create_replication_group(
        ReplicationGroupId=REDIS_GROUP, ReplicationGroupDescription="Entmoot cache", Engine="redis",
        CacheNodeType="cache.r6g.large", NumCacheClusters=1)
    cloudtrail = aws.client("cloudtrail")
    aws.client("s3").create_bucket(Bucket="entmoot-sandbox-trail")
    cloudtrail.create_trail(Name="entmoot-sandbox", S3BucketName="entmoot-sandbox-trail")
    cloudtrail.start_logging(Name="entmoot-sandbox")
    aws.client("fis").create_experiment_template(
        clientToken="entmoot-sandbox-seed", description="Stop a third of the API's tasks",
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/entmoot-fis", stopConditions=[{"source": "none"}], tags={"Name": FIS_STOP_TASKS},
        targets={"api-tasks": {"resourceType": "aws:ecs:task", "selectionMode": "PERCENT(34)",
                               "parameters": {"cluster": CLUSTER, "service": SERVICE}}},
        actions={"stop-tasks": {"actionId": "aws:ecs:stop-task", "parameters": {"percentage": "34"},
                                "targets": {"Tasks": "api-tasks"}}})
    database = rds.describe_db_instances(DBInstanceIdentifier=DB_INSTANCE)["DBInstances"][0]["Endpoint"]["Address"]
    aws.client("fis").create_experiment_template(
        clientToken="entmoot-sandbox-seed-latency", description="1.5 s between the API's tasks and RDS for two minutes",
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/entmoot-fis", tags={"Name": FIS_RDS_LATENCY},
        stopConditions=[{"source": "aws:cloudwatch:alarm", "value": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{ALARMS[0]}"}],
        targets={"api-tasks": {"resourceType": "aws:ecs:task", "selectionMode": "ALL",
                               "parameters": {"cluster": CLUSTER, "service": SERVICE}}},
        actions={"rds-latency": {"actionId": "aws:ecs:task-network-latency", "targets": {"Tasks": "api-tasks"},
                                 "parameters": {"delayMilliseconds": "1500", "duration": "PT2M", "sources": database}}})
    cloudwatch = aws.client("cloudwatch")
    for name in ALARMS:
        cloudwatch.put_metric_alarm(AlarmName=name, MetricName="Placeholder", Namespace="Entmoot", Statistic="Average",
                                    Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="sandbox: healthy")
    seed_history(aws)
    seed_trail(aws)


def seed_snapshots(aws: Aws) -> None:
    """Automated snapshots inserted oldest first, so that ``DBSnapshots[0]`` (the runbook) is the oldest."""
    backend = moto_backend("rds")
    now = datetime.now(UTC)
    first = next(iter(backend.database_snapshots.values()))
    first.created = now - timedelta(days=3, hours=2)
    for hours in (50, 26, 2):
        at = now - timedelta(hours=hours)
        snapshot = backend.create_auto_snapshot(DB_INSTANCE, f"rds:{DB_INSTANCE}-{at:%Y-%m-%d-%H-%M}")
        snapshot.created = at


def seed_trail(aws: Aws) -> None:
    """A normal day: deploys by the pipeline role, reads by the on-call role."""
    now = datetime.now(UTC)
    events = [trail_event("DescribeServices", "ecs.amazonaws.com", MONITOR_ROLE, now - timedelta(hours=h), read_only=True)
              for h in range(1, 24)]
    for h in (20, 8):
        at = now - timedelta(hours=h)
        events += [trail_event("PutImage", "ecr.amazonaws.com", DEPLOY_ROLE, at),
                   trail_event("RegisterTaskDefinition", "ecs.amazonaws.com", DEPLOY_ROLE, at + timedelta(seconds=20)),
                   trail_event("UpdateService", "ecs.amazonaws.com", DEPLOY_ROLE, at + timedelta(seconds=30))]
    moto_extensions.cloudtrail.add_trail_events(events)


def seed_history(aws: Aws, days: int = 8) -> None:
    """Traffic history: hourly for a week, per minute for the last hour, so that every window a check reads
    (error rate, latency percentiles, hosts, cache) has data the moment the sandbox says it is ready."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rng = random.Random(7)
    alb: list[dict] = []
    cache: list[dict] = []
    node = [{"Name": "CacheClusterId", "Value": REDIS_NODE}]
    points = [(now - timedelta(hours=h), 3600, 60) for h in range(2, days * 24 + 1)]
    points += [(now - timedelta(minutes=m), 60, 1) for m in range(2, 61)]
    for at, _, scale in points:
        requests = rng.randint(18, 26) * scale
        errors = rng.randint(0, 2) if scale > 1 else int(rng.random() < 0.02)  # about 0.1%
        alb += [
            {"MetricName": "RequestCount", "Timestamp": at, "Value": requests, "Unit": "Count"},
            {"MetricName": "HTTPCode_Target_2XX_Count", "Timestamp": at, "Value": requests - errors, "Unit": "Count"},
            {"MetricName": "HTTPCode_Target_5XX_Count", "Timestamp": at, "Value": errors, "Unit": "Count"},
        ]
        lookups = rng.randint(90, 110) * scale
        cache += [
            {"MetricName": "CacheHits", "Dimensions": node, "Timestamp": at, "Value": int(lookups * 0.9), "Unit": "Count"},
            {"MetricName": "CacheMisses", "Dimensions": node, "Timestamp": at, "Value": lookups - int(lookups * 0.9), "Unit": "Count"},
            {"MetricName": "Evictions", "Dimensions": node, "Timestamp": at, "Value": 0, "Unit": "Count"},
        ]
    # The latency windows are minutes long: the last hour per minute is their history. moto keeps one datum per
    # value counted, so the sample is small: 20 requests a minute, a p95 of 60 ms.
    for minutes in range(2, 61):
        at = now - timedelta(minutes=minutes)
        alb += [{"MetricName": "TargetResponseTime", "Timestamp": at, "Unit": "Seconds",
                 "Values": [0.02, 0.06, 0.25], "Counts": [13.0, 6.0, 1.0]},
                {"MetricName": "HealthyHostCount", "Timestamp": at, "Value": 3.0, "Unit": "Count"}]
    aws.publish("AWS/ApplicationELB", [d for m in alb for d in alb_metrics.datums(m, aws.alb_dimension, aws.target_group_dimension)])
    # The fleet's CPU over the last two minutes, idle: the API publishes it live, and CloudWatch's delay would
    # leave those minutes empty at first.
    service = [{"Name": "ClusterName", "Value": CLUSTER}, {"Name": "ServiceName", "Value": SERVICE}]
    aws.publish("AWS/ECS", [
        {"MetricName": "CPUUtilization", "Dimensions": service, "Timestamp": datetime.now(UTC) - timedelta(seconds=back),
         "Value": 2.0, "Unit": "Percent", "StorageResolution": 1} for back in range(5, 121, 5)])
    aws.publish("AWS/ElastiCache", cache)
