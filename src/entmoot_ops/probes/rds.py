"""RDS instance state and free storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from entmoot_ops.clients import Clients
from entmoot_ops.errors import DependencyError
from entmoot_ops.probes import cloudwatch, measuring
from entmoot_ops import iam
from entmoot_ops.iam import needs

GIB = 1024**3


@dataclass(frozen=True)
class DbInstance:
    identifier: str
    status: str
    instance_class: str
    engine_version: str
    allocated_gib: int
    max_allocated_gib: int | None
    pending_modifications: dict
    latest_restorable_time: datetime | None
    backup_retention_days: int


def instance(clients: Clients) -> DbInstance:
    """The instance as DescribeDBInstances says; read once per run (a remediation reads it fresh)."""
    identifier = clients.env.rds.instance
    return clients.remember(("rds.instance", identifier), lambda: _instance(clients, identifier))


@needs("rds:DescribeDBInstances", resources=iam.DB_INSTANCES)
def _instance(clients: Clients, identifier: str) -> DbInstance:
    with measuring("AWS RDS"):
        answer = clients.aws("rds").describe_db_instances(DBInstanceIdentifier=identifier)
    if not answer.get("DBInstances"):
        raise DependencyError("AWS RDS", f"DB instance {identifier} not found")
    raw = answer["DBInstances"][0]
    return DbInstance(
        identifier=identifier,
        status=raw["DBInstanceStatus"],
        instance_class=raw.get("DBInstanceClass", ""),
        engine_version=raw.get("EngineVersion", ""),
        allocated_gib=int(raw["AllocatedStorage"]),
        max_allocated_gib=raw.get("MaxAllocatedStorage"),
        pending_modifications=raw.get("PendingModifiedValues", {}),
        latest_restorable_time=raw.get("LatestRestorableTime"),
        backup_retention_days=int(raw.get("BackupRetentionPeriod", 0)),
    )


@dataclass(frozen=True)
class Snapshot:
    identifier: str
    status: str
    created: datetime | None


@needs("rds:DescribeDBSnapshots", resources=iam.DB_SNAPSHOTS)
def automated_snapshots(clients: Clients) -> tuple[Snapshot, ...]:
    """Every automated snapshot of the instance, oldest first. DescribeDBSnapshots has no order (the runbook's
    ``DBSnapshots[0]`` is whichever came first), so this sorts; one still being created has no time yet."""
    found = []
    with measuring("AWS RDS"):
        paginator = clients.aws("rds").get_paginator("describe_db_snapshots")
        for page in paginator.paginate(DBInstanceIdentifier=clients.env.rds.instance, SnapshotType="automated"):
            found += [Snapshot(s["DBSnapshotIdentifier"], s["Status"], s.get("SnapshotCreateTime")) for s in page["DBSnapshots"]]
    return tuple(sorted(found, key=lambda s: (s.created is not None, s.created or datetime.min)))


@dataclass(frozen=True)
class FreeStorage:
    free_bytes: float | None  # None: no datapoint in the freshness window
    allocated_bytes: int
    measured_at: str | None

    @property
    def free_ratio(self) -> float | None:
        return None if self.free_bytes is None else self.free_bytes / self.allocated_bytes


def free_storage(clients: Clients, db: DbInstance) -> FreeStorage:
    """FreeStorageSpace in the newest complete period that holds data (its Minimum), against allocated storage."""
    thresholds = clients.env.thresholds
    window = cloudwatch.Window.last(thresholds.metric_freshness_minutes, thresholds.metric_period_seconds)
    series = cloudwatch.series(clients, "AWS/RDS", "FreeStorageSpace", {"DBInstanceIdentifier": db.identifier}, "Minimum", window)
    latest = series.latest_period(window.period_seconds)
    return FreeStorage(
        free_bytes=latest.value if latest else None,
        allocated_bytes=db.allocated_gib * GIB,
        measured_at=latest.describe() if latest else None,
    )


@needs("ec2:DescribeInstanceTypes")
def physical_cores(clients: Clients, instance_class: str) -> int:
    """The physical cores of an RDS instance class, from the EC2 instance type it runs on (db.r6i.xlarge: r6i.xlarge)."""
    with measuring("AWS EC2"):
        found = clients.aws("ec2").describe_instance_types(InstanceTypes=[instance_class.removeprefix("db.")])["InstanceTypes"]
    return int(found[0]["VCpuInfo"]["DefaultCores"])
