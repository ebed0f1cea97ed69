"""Runbook Morning Checklist [3] and Alert: Database Replication Lag (>60s).

The runbook lists replication slots; what it means is: every replica is connected and streaming, no slot
is retaining WAL for nobody, and the replicas are less than 60 s behind — measured so that an idle primary
is not mistaken for lag.
"""

import pytest

from entmoot_ops import charts
from entmoot_ops.check import chart, check, evidence, expect
from entmoot_ops.probes import cloudwatch, postgres

SECTION = "alert-database-replication-lag-60s"


@pytest.mark.morning
@pytest.mark.alerts
@check(id="replication.streaming", title="Replica connected and streaming", section=SECTION, severity="high",
       remediation="replication.restore-replica",
       depends=("primary",))
def test_replica_streaming(env, replica):
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        connected = postgres.replicas_connected(primary)
    evidence("pg_stat_replication", connected)
    states = {c.application_name: c.state for c in connected}
    expect(f"state of replica {replica.name} in pg_stat_replication", states.get(replica.name, "not connected"), "==", "streaming")


@pytest.mark.morning
@check(id="replication.slots-active", title="Every replication slot is in use", section=SECTION, severity="high",
       remediation="replication.drop-or-reattach-slot",
       depends=("primary",))
def test_replication_slots_active(env):
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        slots = postgres.replication_slots(primary)
    evidence("pg_replication_slots", slots)
    inactive = [f"{s.name} retaining {s.retained_bytes or 0} bytes of WAL" for s in slots if not s.active]
    expect("inactive replication slots" + (f": {'; '.join(inactive)}" if inactive else ""), len(inactive), "==", 0)


@pytest.mark.morning
@pytest.mark.alerts
@check(id="replication.lag", title="Replica lag below 60 s", section=SECTION, severity="high",
       remediation="replication.reduce-lag",
       depends=("replica",))
def test_replica_lag(env, lag_target):
    source, name = lag_target
    maximum = env.thresholds.replication_lag_max_seconds
    if source == "cloudwatch":
        thresholds = env.thresholds
        window = cloudwatch.Window.last(thresholds.metric_freshness_minutes, thresholds.metric_period_seconds)
        series = cloudwatch.series(env.clients, "AWS/RDS", "ReplicaLag", {"DBInstanceIdentifier": name}, "Maximum", window)
        evidence("ReplicaLag", series)
        chart("ReplicaLag", lambda: charts.of_series(f"ReplicaLag of {name}", {"lag": series}, unit="s", threshold=maximum, window=window))
        latest = series.latest_period(window.period_seconds)
        expect(f"ReplicaLag of {name} (maximum in the period {latest.describe() if latest else 'none'})",
               latest.value if latest else None, "<", maximum, unit="s", window=window.describe(), gauge="replica lag")
        return
    replica = next(r for r in env.config.postgres.replicas if r.name == name)
    with env.clients.postgres(replica.dsn, name=f"replica {name}") as session:
        lag = postgres.replica_lag(session)
    evidence(f"lag on {name}", lag)
    expect(f"{name} in recovery", lag.in_recovery, "==", True)
    expect(f"WAL replay paused on {name}", lag.replay_paused, "==", False)
    if lag.lag_seconds is None:  # nothing replayed since it started: the replica cannot tell; its primary can
        with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
            seen = postgres.lag_seen_by_primary(primary, name)
        evidence(f"lag of {name} seen by the primary", seen)
        expect(f"replay lag of {name} (seen by the primary: no transaction replayed since it started)", seen, "<", maximum, unit="s",
               gauge="replica lag")
        return
    expect(f"replay lag of {name}", lag.lag_seconds, "<", maximum, unit="s", gauge="replica lag")
