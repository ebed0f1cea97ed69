"""Replication procedures (runbook Alert: Database Replication Lag)."""

from entmoot_ops.remediation import procedure

SECTION = "alert-database-replication-lag-60s"
procedure("replication.restore-replica", title="Reconnect a replica that is not streaming", section=SECTION, steps=[
    "on the replica: SELECT status, last_msg_receipt_time, sender_host FROM pg_stat_wal_receiver",
    "RDS: aws rds describe-db-instances --db-instance-identifier <replica> (StatusInfos) and describe-events",
    "network: aws ec2 describe-network-interfaces for the replica's security groups",
    "contact AWS Support if it does not reconnect within 5 min",
])
procedure("replication.drop-or-reattach-slot", title="Deal with an inactive replication slot", section=SECTION, steps=[
    "SELECT slot_name, active, wal_status, pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) FROM pg_replication_slots",
    "if its consumer is gone for good: SELECT pg_drop_replication_slot('<slot>') (retained WAL fills the disk otherwise)",
    "if its consumer is coming back: watch free storage (rds.free-storage) until it does",
])
procedure("replication.reduce-lag", title="Bring replica lag under 60 s", section=SECTION, steps=[
    "on the replica: SELECT pg_is_wal_replay_paused(); resume with pg_wal_replay_resume() if paused by mistake",
    "long queries on the replica block replay: SELECT pid, now() - query_start, query FROM pg_stat_activity ORDER BY 2 DESC",
    "if lag keeps increasing: reduce write load on the primary; contact AWS Support if it continues > 5 min",
])
