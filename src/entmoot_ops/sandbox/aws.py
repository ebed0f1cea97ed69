"""moto in-process on loopback, seeded like Entmoot's account, plus what moto lacks that the checks need.

moto is a state store: ECS deployments never roll out, nothing publishes AWS/* metrics, alarms are never
evaluated. The sandbox shapes that state through moto's backends (same process), and this module is the one
place that touches them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import uuid
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, UTC
from typing import Any

import boto3
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

from entmoot_ops.sandbox import moto_extensions

REGION = "us-east-1"
# moto accepts any keys; these are long and unlikely so that masking them never blanks ordinary words.
CREDENTIALS = {"aws_access_key_id": "AKIAENTMOOTSANDBOX01", "aws_secret_access_key": "entmoot-sandbox-secret-key-not-a-real-one"}
# The suite's key, apart from the sandbox's own processes' (CREDENTIALS): throttling applies to it and not to them.
# Under IAM enforcement the suite signs as the user of its mode instead.
SUITE_CREDENTIALS = {"aws_access_key_id": "AKIAENTMOOTSUITE0001", "aws_secret_access_key": "entmoot-sandbox-suite-key-not-a-real-one"}
CLUSTER = "entmoot-sandbox"
SERVICE = "entmoot-api"
DB_INSTANCE = "entmoot-sandbox"
DB_REPLICA = "entmoot-sandbox-replica"
LOG_GROUP = "/ecs/entmoot-sandbox"
ALB = "entmoot-sandbox"
REDIS_GROUP = "entmoot-redis-sandbox"
REDIS_NODE = "entmoot-redis-sandbox-001"
ECR_REPO = "entmoot-api"
FIS_STOP_TASKS = "entmoot-stop-api-tasks"  # the seeded FIS experiment templates (tag Name)
FIS_RDS_LATENCY = "entmoot-api-rds-latency"
# ElastiCache node types by memory, each twice the one before: the real Redis's maxmemory follows the group's type.
# RDS instance classes by size, each twice the one before: the reported CPU halves for each step up.
INSTANCE_CLASSES = ("db.r6i.large", "db.r6i.xlarge", "db.r6i.2xlarge", "db.r6i.4xlarge", "db.r6i.8xlarge")
SEEDED_CLASS = "db.r6i.xlarge"
NODE_TYPES = ("cache.t3.medium", "cache.r6g.large", "cache.r6g.xlarge", "cache.r6g.2xlarge", "cache.r6g.4xlarge")
ALARMS = ("entmoot-api-error-rate", "entmoot-api-p95-latency", "entmoot-rds-cpu", "entmoot-rds-free-storage",
          "entmoot-rds-replica-lag", "entmoot-redis-memory")
DESIRED = 3
ALLOCATED_GIB = 20
ACCOUNT = DEFAULT_ACCOUNT_ID
DEPLOY_ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/entmoot-deploy/github-actions"
AGENT_USER = "entmoot-sandbox-agent"  # the sandbox's own processes, with every right under IAM enforcement
MONITOR_ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/entmoot-ops-readonly/oncall"


# AWS makes a one-minute datapoint readable 60 to 150 s after its timestamp; the sandbox's periods are 10 s
# (environments/sandbox.toml), so its datapoints become readable 1 to 2.5 periods late likewise.
DEFAULT_CLOUDWATCH_DELAY = "10-25"


def cloudwatch_delay_setting() -> tuple[float, float]:
    """ENTMOOT_SANDBOX_CLOUDWATCH_DELAY: "LOW-HIGH" seconds, or "0" for datapoints readable at once."""
    text = os.environ.get("ENTMOOT_SANDBOX_CLOUDWATCH_DELAY", DEFAULT_CLOUDWATCH_DELAY)
    low, _, high = text.partition("-")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        raise ValueError(f"ENTMOOT_SANDBOX_CLOUDWATCH_DELAY={text!r}: expected LOW-HIGH seconds (such as 10-25) or 0") from None
    if not 0 <= bounds[0] <= bounds[1]:
        raise ValueError(f"ENTMOOT_SANDBOX_CLOUDWATCH_DELAY={text!r}: expected 0 <= LOW <= HIGH")
    return bounds


def moto_backend(service: str) -> Any:
    return get_backend(service)[DEFAULT_ACCOUNT_ID][REGION]


@dataclass
class Aws:
    version: str
    server: ThreadedMotoServer | None = None
    port: int = 0
    alb_dimension: str = ""
    load_balancer_arn: str = ""
    target_group_arn: str = ""
    certificate_arn: str | None = None  # the HTTPS listener's, in ACM
    tasks: moto_extensions.services.ServiceTasks = field(
        default_factory=lambda: moto_extensions.services.ServiceTasks(CLUSTER, SERVICE, f"arn:aws:ecs:{REGION}:{ACCOUNT}:task"))
    _ecs_lock: threading.Lock = field(default_factory=threading.Lock)
    # One client per service and endpoint: faults call again and again, and a new client costs more CPU than the call.
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _clients_lock: threading.Lock = field(default_factory=threading.Lock)
    iam_keys: dict[str, dict[str, str]] = field(default_factory=dict)  # per mode, once IAM is enforced
    cloudwatch_delay: tuple[float, float] = field(default_factory=lambda: cloudwatch_delay_setting())

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        key = (service, self.endpoint)
        with self._clients_lock:
            if key not in self._clients:
                self._clients[key] = boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **CREDENTIALS)
            return self._clients[key]

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto_extensions.install()
        moto_extensions.iam.unthrottled_key = CREDENTIALS["aws_access_key_id"]
        moto_extensions.cloudwatch.visibility_delay = self.cloudwatch_delay
        moto_extensions.services.service_tasks = self.tasks
        self.tasks.on_stop = self._task_stopped
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port)
        self.server.start()
        self.port = self.server.get_host_and_port()[1]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def serve_certificate(self, certificate: bytes, key: bytes, chain: bytes) -> None:
        """The HTTPS listener's certificate, imported into ACM: the first time with the listener itself, after that
        re-imported under the same ARN (the listener keeps serving it), as a renewal of an imported one is."""
        acm = self.client("acm")
        if self.certificate_arn is not None:
            acm.import_certificate(CertificateArn=self.certificate_arn, Certificate=certificate, PrivateKey=key, CertificateChain=chain)
            return
        self.certificate_arn = acm.import_certificate(Certificate=certificate, PrivateKey=key, CertificateChain=chain)["CertificateArn"]
        self.client("elbv2").create_listener(LoadBalancerArn=self.load_balancer_arn, Protocol="HTTPS", Port=443,
                                             Certificates=[{"CertificateArn": self.certificate_arn}],
                                             DefaultActions=[{"Type": "forward", "TargetGroupArn": self.target_group_arn}])

    def register_version(self, version: str) -> str:
        """An image tag in ECR and a task-definition revision that runs it, as a pipeline would leave them."""
        image = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{ECR_REPO}:{version}"
        ecr = self.client("ecr")
        if not ecr.batch_get_image(repositoryName=ECR_REPO, imageIds=[{"imageTag": version}])["images"]:
            digest = uuid.uuid5(uuid.NAMESPACE_URL, version).hex * 2
            ecr.put_image(repositoryName=ECR_REPO, imageTag=version,
                          imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
                          imageManifest=json.dumps({"schemaVersion": 2, "config": {"digest": f"sha256:{digest}"}}))
        definition = self.client("ecs").register_task_definition(family=SERVICE, containerDefinitions=[
            {"name": "api", "image": image, "memory": 1024, "cpu": 512, "portMappings": [{"containerPort": 8000}],
             # The sandbox API's pool (sandbox.api: max_size 10), as the real service is configured.
             "environment": [{"name": "DATABASE_POOL_SIZE", "value": "10"}, {"name": "DATABASE_MAX_OVERFLOW", "value": "0"}]}])
        return definition["taskDefinition"]["taskDefinitionArn"]

    def deploy(self, version: str) -> str:
        """What the user's pipeline does: register the revision and point the service at it."""
        arn = self.register_version(version)
        self.client("ecs").update_service(cluster=CLUSTER, service=SERVICE, taskDefinition=arn)
        return arn

    def set_snapshot_times(self, shift: timedelta) -> None:
        for snapshot in moto_backend("rds").database_snapshots.values():
            snapshot.created = snapshot.created + shift

    def set_restore_lag(self, seconds: float) -> None:
        moto_backend("rds").databases[DB_INSTANCE].sandbox_restore_lag_seconds = seconds

    def scale_metric(self, namespace: str, metrics: tuple[str, ...], since: datetime, factor: float) -> Any:
        """Multiply stored datapoints of metrics since a moment; returns the undo."""
        changed = [d for d in moto_backend("cloudwatch").metric_data
                   if d.namespace == namespace and d.name in metrics and _aware(d.timestamp) >= since]
        for datum in changed:
            datum.value *= factor

        def undo() -> None:
            for datum in changed:
                datum.value /= factor
        return undo


    # ----------------------------------------------------------------------- state moto does not simulate
    def settle_service(self, *, stuck: bool = False, on_new_deployment: Any = None) -> bool:
        """One scheduler step, as ECS would take it: a new task definition starts a PRIMARY deployment that
        gains tasks while the old one drains, then completes; a new desired count is reached step by step.
        ``stuck`` holds the PRIMARY rollout one task short; ``on_new_deployment(version)`` is told when a new
        deployment starts. Returns True while something is still moving."""
        with self._ecs_lock:
            return self._settle_service(stuck, on_new_deployment)

    def _settle_service(self, stuck: bool, on_new_deployment: Any) -> bool:
        backend = moto_backend("ecs")
        service = backend.services[f"{CLUSTER}:{SERVICE}"]
        wanted = backend.describe_task_definition(service.task_definition).arn
        deployments = service.deployments
        primary = next(d for d in deployments if d["status"] == "PRIMARY")
        now = datetime.now(UTC)
        if primary["taskDefinition"] != wanted:
            primary["status"] = "ACTIVE"
            primary = {**primary, "id": f"ecs-svc/{random.randint(10**17, 10**18)}", "status": "PRIMARY",
                       "taskDefinition": wanted, "runningCount": 0, "failedTasks": 0, "createdAt": now,
                       "rolloutState": "IN_PROGRESS", "rolloutStateReason": "ECS deployment in progress."}
            deployments.insert(0, primary)
            if on_new_deployment is not None:
                on_new_deployment(self.version_of(wanted))
        desired = service.desired_count
        step = max(1, math.ceil(desired / 2))
        # Stopped tasks are replaced, but not at once: until then the service runs short.
        ceiling = (desired - 1 if stuck else desired) - self.tasks.awaiting_replacement()
        running = primary["runningCount"]
        primary["runningCount"] = min(running + step, ceiling) if running < ceiling else min(running, ceiling)
        for old in [d for d in deployments if d is not primary]:
            old["runningCount"] = max(0, old["runningCount"] - step)
            old["desiredCount"] = 0
            if old["runningCount"] == 0:
                deployments.remove(old)
        done = primary["runningCount"] == desired and len(deployments) == 1
        primary.update(desiredCount=desired, pendingCount=desired - primary["runningCount"], updatedAt=now)
        if done:
            primary.update(rolloutState="COMPLETED", rolloutStateReason="ECS deployment completed.")
        elif stuck:
            primary.update(rolloutState="IN_PROGRESS", rolloutStateReason="ECS deployment in progress.")
        service.running_count = sum(d["runningCount"] for d in deployments)
        service.pending_count = primary["pendingCount"]
        self.tasks.follow(service.running_count)
        return not done

    def _task_stopped(self) -> None:
        """StopTask of one of the service's tasks: the deployment that ran it runs one fewer."""
        with self._ecs_lock:
            service = moto_backend("ecs").services[f"{CLUSTER}:{SERVICE}"]
            deployment = next(d for d in service.deployments if d["runningCount"] > 0)
            deployment["runningCount"] -= 1
            deployment["pendingCount"] = deployment.get("desiredCount", 0) - deployment["runningCount"]
            service.running_count = sum(d["runningCount"] for d in service.deployments)
            service.pending_count = deployment["pendingCount"]

    def version_of(self, task_definition: str) -> str:
        image = moto_backend("ecs").describe_task_definition(task_definition).container_definitions[0]["image"]
        return image.rsplit(":", 1)[1]

    def service_task_definition(self) -> str:
        backend = moto_backend("ecs")
        return backend.describe_task_definition(backend.services[f"{CLUSTER}:{SERVICE}"].task_definition).arn

    def publish(self, namespace: str, data: list[dict]) -> None:
        """Datapoints of AWS's own metrics (AWS/*), in PutMetricData's shape, straight into moto's store: AWS publishes
        them without its public API, and through it the agent's ticks alone took a quarter of an idle sandbox's CPU.
        Timestamps are stored as moto's request parsing stores them, naive in UTC: its queries compare them so."""
        moto_backend("cloudwatch").put_metric_data(namespace, [
            {**datum, "Timestamp": _aware(datum["Timestamp"]).astimezone(UTC).replace(tzinfo=None)} if "Timestamp" in datum else datum
            for datum in data])

    def running_count(self) -> int:
        return moto_backend("ecs").services[f"{CLUSTER}:{SERVICE}"].running_count

    def desired_count(self) -> int:
        return moto_backend("ecs").services[f"{CLUSTER}:{SERVICE}"].desired_count

    def instance_class(self) -> str:
        return moto_backend("rds").databases[DB_INSTANCE].db_instance_class

    def cache_node_type(self) -> str:
        return moto_backend("elasticache").replication_groups[REDIS_GROUP].cache_node_type

    def allocated_gib(self) -> int:
        return int(moto_backend("rds").databases[DB_INSTANCE].allocated_storage)

    def set_db_status(self, status: str) -> None:
        moto_backend("rds").databases[DB_INSTANCE].status = status

    def rewind_metrics(self, namespace: str, since: datetime, names: tuple[str, ...] = ()) -> int:
        """Forget datapoints of one namespace (of ``names`` only, when given) since a moment: the undo of a fault
        that produced them."""
        backend = moto_backend("cloudwatch")
        before = len(backend.metric_data)
        backend.metric_data = [d for d in backend.metric_data if not (d.namespace == namespace and _aware(d.timestamp) >= since
                                                                      and (not names or d.name in names))]
        return before - len(backend.metric_data)

    def enforce_iam(self, policies: dict[str, dict]) -> dict[str, dict[str, str]]:
        """IAM as AWS enforces it: a user per mode holding exactly its policy (``entmoot-ops-check``...), whose keys
        are returned; the sandbox's own key becomes an administrator's, so that the agent keeps every right.
        Called again, it replaces the policies and keeps the users and keys."""
        iam = self.client("iam")
        existing = {user["UserName"] for user in iam.list_users()["Users"]}
        if AGENT_USER not in existing:
            iam.create_user(UserName=AGENT_USER)
            iam.put_user_policy(UserName=AGENT_USER, PolicyName="everything", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
            iam.create_access_key(UserName=AGENT_USER)
            # moto draws keys at random; the agent and every sandbox process already sign with CREDENTIALS.
            (key,) = get_backend("iam")[ACCOUNT]["aws"].get_user(AGENT_USER).access_keys
            key.access_key_id, key.secret_access_key = CREDENTIALS["aws_access_key_id"], CREDENTIALS["aws_secret_access_key"]
        keys = self.iam_keys
        for mode, document in policies.items():
            user = f"entmoot-ops-{mode}"
            if user not in existing:
                iam.create_user(UserName=user)
                created = iam.create_access_key(UserName=user)["AccessKey"]
                keys[mode] = {"access_key_id": created["AccessKeyId"], "secret_access_key": created["SecretAccessKey"]}
            iam.put_user_policy(UserName=user, PolicyName="entmoot-ops", PolicyDocument=json.dumps(document))
        moto_extensions.iam.enforce_iam(True)
        return keys

    def rewind_logs(self, since: datetime) -> int:
        """Forget the API's log events since a moment, with the datapoints of the fault that wrote them."""
        cutoff = since.timestamp() * 1000
        removed = 0
        for stream in list(moto_backend("logs").groups[LOG_GROUP].streams.values()):
            kept = [event for event in stream.events if event.timestamp < cutoff]
            removed += len(stream.events) - len(kept)
            stream.events = kept
        return removed


def _aware(moment: datetime) -> datetime:
    """moto keeps timestamps as it was given them, naive or not."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def trail_event(name: str, source: str, principal: str, at: datetime, *, read_only: bool = False,
                user_type: str = "AssumedRole", error_code: str | None = None, request: dict | None = None,
                additional: dict | None = None) -> dict[str, Any]:
    """A CloudTrail event as LookupEvents returns it, with the record in CloudTrailEvent."""
    event_id = str(uuid.uuid4())
    record = {"eventVersion": "1.08", "eventID": event_id, "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "eventSource": source, "eventName": name, "awsRegion": REGION, "readOnly": read_only,
              "userIdentity": {"type": user_type, "arn": principal, "accountId": ACCOUNT},
              "requestParameters": request, "additionalEventData": additional}
    if error_code:
        record.update(errorCode=error_code, errorMessage=f"User: {principal} is not authorized")
    return {"EventId": event_id, "EventName": name, "ReadOnly": "true" if read_only else "false", "EventTime": at,
            "EventSource": source, "Username": "root" if user_type == "Root" else principal.rsplit("/", 1)[-1], "Resources": [],
            "CloudTrailEvent": json.dumps(record)}
