"""Runbook Troubleshooting > High API Error Rate, as one incident bundle (-m incident -k error_triage).

It reads what the runbook's investigation reads, over the last 30 minutes, correctly: the error *rate* from the
load balancer, the error logs grouped by message (Logs Insights, not a filter pattern that matches nothing), the
PRIMARY deployment against the moment errors began, connections by database, user and state, and Redis INFO.
Its verdict names the most likely of the runbook's Common Causes, with the evidence that points at it.
"""

import pytest

from entmoot_ops import triage
from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes.cloudwatch import Window


@pytest.mark.incident
@check(id="incident.api-errors", title="High API Error Rate: the error rate, its grouped errors and the most likely cause",
       section="high-api-error-rate", severity="critical", remediation="incident.error-cause",
       depends=("traffic", "aws"))
def test_error_triage(env):
    t = env.thresholds
    window = Window.last(t.incident_window_minutes, t.metric_period_seconds)
    findings = triage.error_rate_findings(env.clients, env.config, window)
    evidence("ALB requests and 5XX per period", findings.periods)
    if findings.investigated:
        evidence("error logs grouped by message", findings.logs)
        evidence("PRIMARY deployment and the error onset", {"deployment": findings.deployment,
                                                            "onset": findings.periods.onset(t.error_rate_max)})
        evidence("connections by database, user and state", findings.connections)
        evidence("Redis INFO", findings.redis)
        evidence("parts that could not be measured", findings.unavailable)
    if findings.requests < t.error_rate_min_requests:
        pytest.skip(f"too little traffic to judge: {findings.requests:.0f} requests < {t.error_rate_min_requests} in {window.describe()}")
    verdict = ""
    if findings.error_rate is not None and findings.error_rate >= t.error_rate_max:
        cause = triage.most_likely_cause(findings, env.config)
        verdict = "; most likely cause: " + (cause.describe() if cause else
                                             f"none of the Common Causes matched; top errors: {findings.logs.describe()}")
    expect(f"5XX error rate ({findings.errors:.0f} of {findings.requests:.0f} requests){verdict}",
           findings.error_rate, "<", t.error_rate_max, unit="%", window=window.describe())
