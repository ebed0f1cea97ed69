"""Runbook Morning Checklist [5] and Alert: Disk Space Low (<10%)."""

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import rds


@pytest.mark.morning
@check(id="rds.available", title="RDS instance available", section="morning-checklist-start-of-business-day",
       severity="critical", remediation="rds.investigate-status")
def test_rds_available(env):
    db = rds.instance(env.clients)
    evidence("rds:DescribeDBInstances", db)
    expect(f"status of {db.identifier}", db.status, "==", "available")


@pytest.mark.morning
@pytest.mark.alerts
@check(id="rds.free-storage", title="RDS free storage above 10% of allocated", section="alert-disk-space-low-10",
       severity="high", remediation="rds.increase-storage")
def test_rds_free_storage(env):
    db = rds.instance(env.clients)
    storage = rds.free_storage(env.clients, db)
    evidence("FreeStorageSpace vs AllocatedStorage", {"instance": db, "storage": storage})
    expect("free storage (FreeStorageSpace / AllocatedStorage)", storage.free_ratio, ">",
           env.thresholds.rds_free_storage_min_ratio, unit="%",
           window=f"latest datapoint {storage.measured_at or 'none'} of {db.allocated_gib} GiB")
