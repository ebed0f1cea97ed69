"""ECS tasks that a service runs and replaces, RDS reboots, instance class changes and restorable time, ElastiCache
failover and replica count: what moto does not do, done with the sandbox's real servers."""

from __future__ import annotations

import threading

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from moto.elasticache.exceptions import InvalidParameterValueException, ReplicationGroupNotFound
from moto.elasticache.responses import ElastiCacheResponse
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.rds.responses import RDSResponse
from moto.rds.models import DBInstance, RDSBackend

_lock = threading.Lock()  # this extension's state is read and changed by moto's request threads



REPLACE_AFTER_SECONDS = 10


class ServiceTasks:
    """The running tasks of one ECS service, as ARNs, following the running count the sandbox's scheduler keeps."""

    def __init__(self, cluster: str, service: str, arn_prefix: str):
        self.cluster, self.service, self.arn_prefix = cluster, service, arn_prefix
        self.arns: list[str] = []
        self.stopped: list[tuple[float, str]] = []  # (monotonic time, ARN): replaced REPLACE_AFTER_SECONDS later
        self.on_stop: Any = None  # the scheduler's: lower the running count

    def follow(self, running: int) -> None:
        with _lock:
            while len(self.arns) > running:
                self.arns.pop()
            while len(self.arns) < running:
                self.arns.append(f"{self.arn_prefix}/{self.cluster}/{uuid.uuid4().hex}")

    def awaiting_replacement(self) -> int:
        now = time.monotonic()
        with _lock:
            self.stopped = [(at, arn) for at, arn in self.stopped if now - at < REPLACE_AFTER_SECONDS]
            return len(self.stopped)

    def stop(self, arn: str) -> bool:
        with _lock:
            if arn not in self.arns:
                return False
            self.arns.remove(arn)
            self.stopped.append((time.monotonic(), arn))
        self.on_stop()
        return True


service_tasks: ServiceTasks | None = None


# What the sandbox does when AWS is asked to reboot its database or fail its cache over (set by the supervisor).
on_reboot_db: Any = None


on_cache_failover: Any = None


def _list_tasks(self: EC2ContainerServiceResponse) -> Any:
    tasks = service_tasks
    if tasks is not None and self._get_param("serviceName") == tasks.service and self._get_param("cluster") in (
            tasks.cluster, None) and self._get_param("desiredStatus", "RUNNING") == "RUNNING":
        return ActionResult({"taskArns": list(tasks.arns)})
    return _original_list_tasks(self)


def _stop_task(self: EC2ContainerServiceResponse) -> Any:
    arn = self._get_param("task")
    if service_tasks is not None and service_tasks.stop(arn):
        return ActionResult({"task": {"taskArn": arn, "clusterArn": service_tasks.cluster, "lastStatus": "RUNNING",
                                      "desiredStatus": "STOPPED", "group": f"service:{service_tasks.service}",
                                      "stoppedReason": self._get_param("reason") or "Task stopped by user"}})
    return _original_stop_task(self)


def _reboot_db_instance(self: RDSResponse) -> Any:
    answer = _original_reboot_db_instance(self)
    if on_reboot_db is not None:
        on_reboot_db(self.params.get("DBInstanceIdentifier"), str(self.params.get("ForceFailover", False)).lower() == "true")
    return answer


def _test_failover(self: ElastiCacheResponse) -> Any:
    group_id = self._get_param("ReplicationGroupId")
    group = self.elasticache_backend.replication_groups.get(group_id)
    if group is None:
        raise ReplicationGroupNotFound(group_id)
    if on_cache_failover is not None:
        on_cache_failover(group_id)
    return ActionResult({"ReplicationGroup": self.elasticache_backend.describe_replication_groups(group_id)[0]})


def _increase_replica_count(self: ElastiCacheResponse) -> Any:
    group_id = self._get_param("ReplicationGroupId")
    wanted = self._get_int_param("NewReplicaCount")
    group = self.elasticache_backend.replication_groups.get(group_id)
    if group is None:
        raise ReplicationGroupNotFound(group_id)
    if wanted is None or not len(group.member_clusters) - 1 < wanted <= 5:
        raise InvalidParameterValueException(f"NewReplicaCount must be above the current {len(group.member_clusters) - 1} and at most 5")
    while len(group.member_clusters) < wanted + 1:
        group.member_clusters.append(f"{group_id}-{len(group.member_clusters) + 1:03d}")
    return ActionResult({"ReplicationGroup": self.elasticache_backend.describe_replication_groups(group_id)[0]})


def _modify_db_instance(self: RDSBackend, db_instance_identifier: str, db_kwargs: dict[str, Any]) -> Any:
    immediately = str(db_kwargs.get("ApplyImmediately", False)).lower() == "true"
    if "DBInstanceClass" in db_kwargs:
        database = self.describe_db_instances(db_instance_identifier)[0]
        pending = dict(getattr(database, "pending_modified_values", None) or {})
        pending.pop("DBInstanceClass", None)  # an immediate change supersedes one waiting for the window
        if not immediately:
            pending["DBInstanceClass"] = db_kwargs.pop("DBInstanceClass")
        database.pending_modified_values = pending
    return _original_modify_db_instance(self, db_instance_identifier, db_kwargs)


def _latest_restorable_time(self: DBInstance) -> datetime:
    return utcnow() - timedelta(seconds=getattr(self, "sandbox_restore_lag_seconds", 0))


_original_modify_db_instance = RDSBackend.modify_db_instance


_original_list_tasks = EC2ContainerServiceResponse.list_tasks


_original_stop_task = EC2ContainerServiceResponse.stop_task


_original_reboot_db_instance = RDSResponse.reboot_db_instance


def install() -> None:
    ElastiCacheResponse.increase_replica_count = _increase_replica_count
    ElastiCacheResponse.test_failover = _test_failover
    EC2ContainerServiceResponse.list_tasks = _list_tasks
    EC2ContainerServiceResponse.stop_task = _stop_task
    RDSResponse.reboot_db_instance = _reboot_db_instance
    RDSBackend.modify_db_instance = _modify_db_instance
    DBInstance.latest_restorable_time = property(_latest_restorable_time)
