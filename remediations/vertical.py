"""Vertical Scaling (runbook): a larger RDS instance class, one step of rds.instance_classes.

By default the change waits for the maintenance window (the runbook warns that --apply-immediately "causes
brief outage"); with rds.apply_immediately it is applied now and waited for until the instance is available on
its new class. Acting needs rds.scaling_allowed (and --yes on production); otherwise it is a plan.
"""

from __future__ import annotations

import time

from entmoot_ops import progress
from entmoot_ops.errors import OpsError
from entmoot_ops.probes import measuring, rds
from entmoot_ops.remediation import Change, RemediationContext, remediation
from entmoot_ops import iam
from entmoot_ops.iam import needs


def _larger(ctx: RemediationContext) -> tuple[rds.DbInstance, str | None]:
    db = rds.instance(ctx.readonly)
    ladder = ctx.env.rds.instance_classes
    return db, ladder[ladder.index(db.instance_class) + 1] if db.instance_class in ladder[:-1] else None


def _plan(ctx: RemediationContext) -> list[str]:
    db, larger = _larger(ctx)
    if larger is None:
        return [f"{db.identifier} is on {db.instance_class}, the top of rds.instance_classes (or not on it): find the "
                "queries that burn the CPU (runbook High Database CPU) before buying more"]
    settings = ctx.env.rds
    when = "--apply-immediately  (WARNING: a brief outage)" if settings.apply_immediately else "(applied in the next maintenance window)"
    allowed = "" if settings.scaling_allowed else "  [a plan only here: acting needs rds.scaling_allowed = true]"
    return [f"aws rds modify-db-instance --db-instance-identifier {db.identifier} --db-instance-class {larger} {when}"
            f"  (from {db.instance_class}){allowed}",
            "then wait until the instance is available on the new class, and re-check its CPU"]


@needs("rds:ModifyDBInstance", mode="remediate", resources=iam.DB_INSTANCES)
def _act(ctx: RemediationContext) -> list[Change]:
    settings = ctx.env.rds
    if not settings.scaling_allowed:
        raise OpsError(f"rds.scaling_allowed is not true for {ctx.env.name}: vertical scaling stays a plan")
    db, larger = _larger(ctx)
    if larger is None:
        raise OpsError(f"{db.identifier} is on {db.instance_class}, the top of rds.instance_classes: not scaling further")
    with measuring("AWS RDS"):
        ctx.writable.aws("rds").modify_db_instance(DBInstanceIdentifier=db.identifier, DBInstanceClass=larger,
                                                  ApplyImmediately=settings.apply_immediately)
    if not settings.apply_immediately:
        return [Change("rds:ModifyDBInstance DBInstanceClass (pending the maintenance window)", db.instance_class, larger)]
    deadline, tick = time.monotonic() + settings.scale_up_timeout_seconds, progress.Progress(f"{db.identifier} to {larger}")
    while True:  # the runbook's wait: available, on the new class
        now = rds.instance(ctx.readonly)
        if now.status == "available" and now.instance_class == larger:
            return [Change("rds:ModifyDBInstance DBInstanceClass", db.instance_class, larger)]
        if time.monotonic() > deadline:
            raise OpsError(f"{db.identifier} not available on {larger} after {settings.scale_up_timeout_seconds:g} s "
                           f"(status {now.status}, class {now.instance_class})")
        tick(f"status {now.status}, class {now.instance_class}")
        time.sleep(5)


remediation("rds.scale-up", title="Vertical Scaling: the next RDS instance class", section="vertical-scaling-larger-instances",
            plan=_plan, act=_act)
