"""Runbook Database Maintenance > Weekly Maintenance, as checks that judge (-m weekly).

The runbook's script ANALYZEs and VACUUMs four tables by name every week, whether they need it or not, and its bloat
query reads a column that does not exist. These checks measure each table's upkeep against the autovacuum thresholds
that apply to it (per-table settings included), and the catalog for what silently rots: invalid indexes, transaction
IDs, sequences.
"""

import pytest

from entmoot_ops.check import check, evidence, expect, expect_none
from entmoot_ops.errors import DependencyError
from entmoot_ops.probes import maintenance

SECTION = "weekly-maintenance"


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "never"


def _upkeep(env) -> tuple[maintenance.TableUpkeep, ...]:
    def measure() -> tuple[maintenance.TableUpkeep, ...]:
        with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
            return maintenance.table_upkeep(primary)
    return env.clients.remember("maintenance.upkeep", measure)


@pytest.mark.weekly
@check(id="postgres.analyze-fresh", title="Planner statistics keep up with each table's writes", section=SECTION, severity="medium",
       remediation="postgres.analyze-stale",
       depends=("primary",))
def test_statistics_fresh(env):
    t, tables = env.thresholds, _upkeep(env)
    evidence("tables: modifications since analyze against autovacuum's trigger", tables)
    stale = maintenance.analyze_overdue(tables, t.upkeep_overdue_factor, t.upkeep_min_rows)
    expect_none(f"tables modified more than {t.upkeep_overdue_factor:g}x their autoanalyze trigger since their last ANALYZE", stale,
                lambda u: f"{u.table} {u.modified_since_analyze} changes > {t.upkeep_overdue_factor:g} x {u.analyze_trigger:.0f}, "
                          f"last analyzed {_when(u.last_analyzed)}")


@pytest.mark.weekly
@check(id="postgres.vacuum-fresh", title="Dead rows are vacuumed as fast as they are made", section=SECTION, severity="medium",
       remediation="postgres.vacuum",
       depends=("primary",))
def test_dead_rows_vacuumed(env):
    t, tables = env.thresholds, _upkeep(env)
    evidence("tables: dead rows against autovacuum's trigger", tables)
    behind = maintenance.vacuum_overdue(tables, t.upkeep_overdue_factor, t.upkeep_min_rows)
    expect_none(f"tables with more than {t.upkeep_overdue_factor:g}x their autovacuum trigger in dead rows", behind,
                lambda u: f"{u.table} {u.dead_rows} dead ({u.dead_ratio:.0%}) > {t.upkeep_overdue_factor:g} x {u.vacuum_trigger:.0f}, "
                          f"last vacuumed {_when(u.last_vacuumed)}")


@pytest.mark.weekly
@pytest.mark.monthly
@check(id="postgres.invalid-indexes", title="No invalid index", section=SECTION, severity="high", remediation="postgres.reindex-invalid",
       depends=("primary",))
def test_no_invalid_index(env):
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        invalid = maintenance.invalid_indexes(primary)
    evidence("invalid indexes", invalid)
    expect_none("invalid indexes (indisvalid = false: written on every insert, never read)", invalid,
                lambda i: f"{i.index} on {i.table}")


@pytest.mark.weekly
@check(id="postgres.xid-wraparound", title="Transaction-ID wraparound headroom", section=SECTION, severity="critical",
       remediation="postgres.freeze",
       depends=("primary",))
def test_wraparound_headroom(env):
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        databases = maintenance.wraparound(primary)
    evidence("age(datfrozenxid) per database", databases)
    oldest = databases[0]
    expect(f"age(datfrozenxid) of {oldest.database} ({oldest.xid_age} transactions; autovacuum_freeze_max_age "
           f"{oldest.freeze_max_age}; {oldest.headroom} left before writes stop)", oldest.xid_age / 2**31, "<",
           env.thresholds.xid_age_max_ratio, unit="%")


@pytest.mark.weekly
@check(id="postgres.sequences", title="No sequence near the end of its range", section=SECTION, severity="high",
       remediation="postgres.widen-sequence",
       depends=("primary",))
def test_sequences_have_room(env):
    limit = env.thresholds.sequence_max_ratio
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        sequences = maintenance.sequence_use(primary)
    evidence("sequences by the share of their range spent", sequences[:20])
    hidden = [s.sequence for s in sequences if s.last_value is None]
    if hidden:
        raise DependencyError("PostgreSQL primary", f"{len(hidden)} sequences this role may not read ({', '.join(hidden[:5])})",
                              reachable=True, fix="GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO the monitoring role "
                                                  "(and ALTER DEFAULT PRIVILEGES for new ones)")
    expect_none(f"sequences past {limit:.0%} of their range (the owning column's type included)",
                [s for s in sequences if s.ratio > limit], lambda s: f"{s.sequence} {s.last_value} of {s.limit} ({s.ratio:.1%})")
    if sequences:  # the headroom left, as a level whose trend says when the first sequence will cross the limit
        top = sequences[0]
        expect(f"most spent sequence ({top.sequence}, {top.last_value} of {top.limit})", top.ratio, "<=", limit, unit="%",
               gauge="most spent sequence")


@pytest.mark.weekly
@check(id="postgres.table-bloat", title="No table mostly empty space", section=SECTION, severity="low", remediation="postgres.repack-table",
       depends=("primary",))
def test_table_bloat(env):
    t = env.thresholds
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        bloat = maintenance.table_bloat(primary, t.bloat_min_bytes)
    evidence("table bloat (estimate)", bloat[:50])
    expect_none(f"tables of at least {t.bloat_min_bytes} bytes over {t.bloat_max_ratio:.0%} bloat (the runbook's query reads a column "
                "that does not exist)", [b for b in bloat if b.ratio > t.bloat_max_ratio],
                lambda b: f"{b.table} {b.ratio:.0%} of {b.size_bytes} bytes, {b.method}")
