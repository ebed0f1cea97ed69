"""Runbook Morning Checklist [7] (job queue) and Database Connection Pool Exhaustion."""

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import postgres


def _job_queue(env) -> postgres.JobQueue:
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        queue = postgres.job_queue(primary, env.thresholds.job_running_max_minutes * 60)
    evidence("optimization_jobs", queue)
    return queue


@pytest.mark.morning
@check(id="jobs.pending-age", title="Oldest pending optimisation job is recent",
       section="morning-checklist-start-of-business-day", severity="high", remediation="jobs.restart-workers",
       depends=("primary",))
def test_pending_jobs_not_stale(env):
    queue = _job_queue(env)
    expect(f"age of oldest pending job ({queue.pending} pending, {queue.running} running)",
           (queue.oldest_pending_seconds or 0.0) / 60, "<", env.thresholds.job_pending_max_age_minutes, unit="min")


@pytest.mark.morning
@check(id="jobs.stuck-running", title="No optimisation job running for too long",
       section="morning-checklist-start-of-business-day", severity="high", remediation="jobs.restart-workers",
       depends=("primary",))
def test_no_stuck_jobs(env):
    thresholds = env.thresholds
    queue = _job_queue(env)
    stuck = ", ".join(f"job {i} for {s / 60:.0f} min" for i, s in queue.stuck_running)
    expect(f"jobs running longer than {thresholds.job_running_max_minutes:g} min" + (f" ({stuck})" if stuck else ""),
           len(queue.stuck_running), "==", 0)


@pytest.mark.morning
@pytest.mark.incident
@check(id="postgres.connections", title="Database connections below 80% of max_connections",
       section="database-connection-pool-exhaustion", severity="high", remediation="postgres.terminate-idle-sessions",
       depends=("primary",))
def test_connection_headroom(env):
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        usage = postgres.connection_usage(primary)
    evidence("pg_stat_activity by database and state", usage)
    expect(f"client connections ({usage.client_connections} of {usage.usable} usable)", usage.ratio, "<",
           env.thresholds.connections_max_ratio, unit="%", gauge="client connections")
