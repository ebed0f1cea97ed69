"""Runbook Morning Checklist [2] and Handoff: no CloudWatch alarm is firing, and none is blind."""

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import cloudwatch


@pytest.mark.morning
@pytest.mark.handoff
@check(id="alarms.none-firing", title="No CloudWatch alarm in ALARM", section="morning-checklist-start-of-business-day",
       severity="critical", remediation="alarms.follow-alert-procedure",
       depends=("aws",))
def test_no_alarm_firing(env):
    alarms = cloudwatch.alarms(env.clients)
    evidence("cloudwatch:DescribeAlarms", alarms)
    expect("alarms defined", len(alarms), ">", 0)
    firing = [f"{a.name} ({a.reason})" for a in alarms if a.state == "ALARM"]
    expect("alarms in ALARM" + (f": {'; '.join(firing)}" if firing else ""), len(firing), "==", 0)


@pytest.mark.morning
@check(id="alarms.insufficient-data", title="No alarm stuck in INSUFFICIENT_DATA",
       section="morning-checklist-start-of-business-day", severity="medium", remediation="alarms.restore-metric-source",
       depends=("aws",))
def test_no_alarm_without_data(env):
    alarms = cloudwatch.alarms(env.clients)
    blind = [f"{a.name} ({a.reason})" for a in alarms if a.state == "INSUFFICIENT_DATA"]
    evidence("alarms in INSUFFICIENT_DATA", blind)
    # An alarm without data cannot page anyone: it is reported, not silently passed.
    expect("alarms in INSUFFICIENT_DATA" + (f": {'; '.join(blind)}" if blind else ""), len(blind), "==", 0)
