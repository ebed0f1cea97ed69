"""RDS remediations: storage (executable, bounded), status investigation and High CPU (procedures)."""

from __future__ import annotations

import math

from entmoot_ops.errors import OpsError
from entmoot_ops.probes import measuring, rds
from entmoot_ops.remediation import Change, RemediationContext, procedure, remediation
from entmoot_ops import iam
from entmoot_ops.iam import needs


def _target_gib(ctx: RemediationContext, current: int) -> int:
    settings = ctx.env.rds
    # AWS refuses an increase below 10%; the configured ratio is at least 1.1.
    return min(settings.max_allocated_storage_gib, math.ceil(current * settings.storage_increase_ratio))


def _plan(ctx: RemediationContext) -> list[str]:
    db = rds.instance(ctx.readonly)
    target = _target_gib(ctx, db.allocated_gib)
    if target <= db.allocated_gib:
        return [f"{db.identifier} is at the bound of {ctx.env.rds.max_allocated_storage_gib} GiB: archive old data "
                "(runbook Alert: Disk Space Low, step 3) or raise rds.max_allocated_storage_gib deliberately"]
    return [f"aws rds modify-db-instance --db-instance-identifier {db.identifier} --allocated-storage {target} "
            f"--apply-immediately  (from {db.allocated_gib} GiB; bound {ctx.env.rds.max_allocated_storage_gib} GiB)",
            "then re-check free storage until it is above the threshold"]


@needs("rds:ModifyDBInstance", mode="remediate", resources=iam.DB_INSTANCES)
def _act(ctx: RemediationContext) -> list[Change]:
    db = rds.instance(ctx.readonly)
    target = _target_gib(ctx, db.allocated_gib)
    if target <= db.allocated_gib:
        raise OpsError(f"{db.identifier} already has {db.allocated_gib} GiB, the configured bound: not increasing")
    with measuring("AWS RDS"):
        ctx.writable.aws("rds").modify_db_instance(DBInstanceIdentifier=db.identifier, AllocatedStorage=target,
                                                  ApplyImmediately=True)
    return [Change("rds:ModifyDBInstance AllocatedStorage", f"{db.allocated_gib} GiB", f"{target} GiB")]


remediation("rds.increase-storage", title="Increase RDS allocated storage (bounded)", section="alert-disk-space-low-10",
            plan=_plan, act=_act)

procedure("rds.investigate-status", title="Find out why the DB instance is not available", section="high-database-cpu", steps=[
    "aws rds describe-events --source-type db-instance --source-identifier <instance> --duration 120",
    "storage-full: increase storage (remediation rds.increase-storage); failed/incompatible-*: open an AWS support case",
    "if writes are failing, follow Emergency Response: enable read-only mode and page the DBA",
])


procedure("cpu.identify-source", title="High CPU: find the source, then scale", section="alert-high-cpu-utilization-80", steps=[
    "acknowledge the alert in PagerDuty",
    "the reading that breached names the source: the ECS service or the RDS instance",
    "RDS: follow the runbook's High Database CPU: the active queries by age, pg_stat_statements' top queries",
    "ECS: follow API Response Time High; scale out within 3..20 (entmoot-ops scale --out) if the load is real",
    "document in the incident ticket",
])
