"""moto in-process on loopback, seeded like Entmoot's account, plus what moto lacks that the checks need.

moto is a state store: ECS deployments never roll out, nothing publishes AWS/* metrics, alarms are never
evaluated. The sandbox shapes that state through moto's backends (same process), and this module is the one
place that touches them.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
# moto accepts any keys; these are long and unlikely so that masking them never blanks ordinary words.
CREDENTIALS = {"aws_access_key_id": "AKIAENTMOOTSANDBOX01", "aws_secret_access_key": "entmoot-sandbox-secret-key-not-a-real-one"}
CLUSTER = "entmoot-sandbox"
SERVICE = "entmoot-api"
DB_INSTANCE = "entmoot-sandbox"
DB_REPLICA = "entmoot-sandbox-replica"
LOG_GROUP = "/ecs/entmoot-sandbox"
ALB = "entmoot-sandbox"
REDIS_GROUP = "entmoot-redis-sandbox"
REDIS_NODE = "entmoot-redis-sandbox-001"
ECR_REPO = "entmoot-api"
ALARMS = ("entmoot-api-error-rate", "entmoot-api-p95-latency", "entmoot-rds-cpu", "entmoot-rds-free-storage",
          "entmoot-rds-replica-lag", "entmoot-redis-memory")
DESIRED = 3
ALLOCATED_GIB = 20


def _backend(service: str) -> Any:
    return get_backend(service)[DEFAULT_ACCOUNT_ID][REGION]


@dataclass
class Aws:
    version: str
    server: ThreadedMotoServer | None = None
    port: int = 0
    alb_dimension: str = ""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **CREDENTIALS)

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port)
        self.server.start()
        self.port = self.server.get_host_and_port()[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    # ----------------------------------------------------------------------------------------------- seed
    def seed(self) -> None:
        image = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{ECR_REPO}:{self.version}"
        ecr = self.client("ecr")
        ecr.create_repository(repositoryName=ECR_REPO)
        ecr.put_image(repositoryName=ECR_REPO, imageTag=self.version,
                      imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
                      imageManifest='{"schemaVersion": 2, "config": {"digest": "sha256:' + "0" * 64 + '"}}')
        ecs = self.client("ecs")
        ecs.create_cluster(clusterName=CLUSTER)
        ecs.register_task_definition(family=SERVICE, containerDefinitions=[
            {"name": "api", "image": image, "memory": 1024, "cpu": 512, "portMappings": [{"containerPort": 8000}]}])
        ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=SERVICE, desiredCount=DESIRED)
        self.settle_service()

        rds = self.client("rds")
        rds.create_db_instance(DBInstanceIdentifier=DB_INSTANCE, DBInstanceClass="db.r6i.xlarge", Engine="postgres",
                               EngineVersion="15.8", AllocatedStorage=ALLOCATED_GIB, MaxAllocatedStorage=500,
                               MasterUsername="postgres", MasterUserPassword="not-used-here", BackupRetentionPeriod=7)
        rds.create_db_instance_read_replica(DBInstanceIdentifier=DB_REPLICA, SourceDBInstanceIdentifier=DB_INSTANCE)

        ec2 = self.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
                   for i, z in ((1, "a"), (2, "b"))]
        elb = self.client("elbv2")
        arn = elb.create_load_balancer(Name=ALB, Subnets=subnets, Type="application")["LoadBalancers"][0]["LoadBalancerArn"]
        self.alb_dimension = arn.split(":loadbalancer/", 1)[1]
        elb.create_target_group(Name="entmoot-api", Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="ip")

        self.client("logs").create_log_group(logGroupName=LOG_GROUP)
        self.client("elasticache").create_replication_group(
            ReplicationGroupId=REDIS_GROUP, ReplicationGroupDescription="Entmoot cache", Engine="redis",
            CacheNodeType="cache.r6g.large", NumCacheClusters=1)
        cloudtrail = self.client("cloudtrail")
        self.client("s3").create_bucket(Bucket="entmoot-sandbox-trail")
        cloudtrail.create_trail(Name="entmoot-sandbox", S3BucketName="entmoot-sandbox-trail")
        cloudtrail.start_logging(Name="entmoot-sandbox")
        cloudwatch = self.client("cloudwatch")
        for name in ALARMS:
            cloudwatch.put_metric_alarm(AlarmName=name, MetricName="Placeholder", Namespace="Entmoot", Statistic="Average",
                                        Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
            cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="sandbox: healthy")
        self.seed_history()

    def seed_history(self, days: int = 7) -> None:
        """Traffic history: hourly for a week, per minute for the last hour, so windows and baselines exist."""
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        rng = random.Random(7)
        alb: list[dict] = []
        cache: list[dict] = []
        dims = [{"Name": "LoadBalancer", "Value": self.alb_dimension}]
        node = [{"Name": "CacheClusterId", "Value": REDIS_NODE}]
        points = [(now - timedelta(hours=h), 3600, 60) for h in range(2, days * 24 + 1)]
        points += [(now - timedelta(minutes=m), 60, 1) for m in range(2, 61)]
        for at, _, scale in points:
            requests = rng.randint(18, 26) * scale
            errors = rng.randint(0, 2) if scale > 1 else int(rng.random() < 0.02)  # about 0.1%
            alb += [
                {"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": at, "Value": requests, "Unit": "Count"},
                {"MetricName": "HTTPCode_Target_2XX_Count", "Dimensions": dims, "Timestamp": at, "Value": requests - errors, "Unit": "Count"},
                {"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims, "Timestamp": at, "Value": errors, "Unit": "Count"},
            ]
            lookups = rng.randint(90, 110) * scale
            cache += [
                {"MetricName": "CacheHits", "Dimensions": node, "Timestamp": at, "Value": int(lookups * 0.9), "Unit": "Count"},
                {"MetricName": "CacheMisses", "Dimensions": node, "Timestamp": at, "Value": lookups - int(lookups * 0.9), "Unit": "Count"},
                {"MetricName": "Evictions", "Dimensions": node, "Timestamp": at, "Value": 0, "Unit": "Count"},
            ]
        put_metrics(self.client("cloudwatch"), "AWS/ApplicationELB", alb)
        put_metrics(self.client("cloudwatch"), "AWS/ElastiCache", cache)

    # ----------------------------------------------------------------------- state moto does not simulate
    def settle_service(self, *, stuck: bool = False) -> None:
        """What ECS does after a while: tasks reach the desired count and the rollout completes."""
        service = _backend("ecs").services[f"{CLUSTER}:{SERVICE}"]
        desired = service.desired_count
        running = max(desired - 1, 0) if stuck else desired
        service.running_count, service.pending_count = running, desired - running
        for deployment in service.deployments:
            if deployment["status"] == "PRIMARY":
                deployment.update(desiredCount=desired, runningCount=running, pendingCount=desired - running,
                                  rolloutState="IN_PROGRESS" if stuck else "COMPLETED",
                                  rolloutStateReason="ECS deployment in progress." if stuck else
                                  "ECS deployment completed.")

    def desired_count(self) -> int:
        return _backend("ecs").services[f"{CLUSTER}:{SERVICE}"].desired_count

    def allocated_gib(self) -> int:
        return int(_backend("rds").databases[DB_INSTANCE].allocated_storage)

    def set_db_status(self, status: str) -> None:
        _backend("rds").databases[DB_INSTANCE].status = status

    def rewind_metrics(self, namespace: str, since: datetime) -> int:
        """Forget datapoints of one namespace since a moment: the undo of a fault that produced them."""
        backend = _backend("cloudwatch")
        before = len(backend.metric_data)

        def aware(moment: datetime) -> datetime:  # moto keeps what it was given, naive or not
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

        backend.metric_data = [d for d in backend.metric_data if not (d.namespace == namespace and aware(d.timestamp) >= since)]
        return before - len(backend.metric_data)


def put_metrics(cloudwatch: Any, namespace: str, data: list[dict]) -> None:
    for start in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start:start + 500])
