"""Runbook Database Maintenance > Monthly Maintenance, as checks that judge (-m monthly).

The runbook's "unused indices" lists every index with ``idx_scan = 0`` on the primary: unique and constraint indexes
that enforce something, indexes used only on the replicas, and indexes of a server whose statistics were reset
yesterday. Its archive step is INSERT then DELETE, which loses the rows that change in between (the remediation
moves them in one statement).
"""

from datetime import datetime, UTC

import pytest

from entmoot_ops.check import check, evidence, expect, expect_none
from entmoot_ops.probes import maintenance

SECTION = "monthly-maintenance"


@pytest.mark.monthly
@check(id="postgres.unused-indexes", title="No index unused on the primary and the replicas", section=SECTION, severity="low",
       remediation="postgres.drop-unused-index",
       depends=("primary", "replica"))
def test_no_unused_index(env):
    t = env.thresholds
    unused = maintenance.unused_indexes_everywhere(env.clients)
    evidence("indexes never scanned (primary and replicas)", unused)
    observed = min((datetime.now(UTC) - u.observed_since).total_seconds() / 86400 for u in unused) if unused else None
    if observed is not None and observed < t.unused_index_min_days:
        pytest.skip(f"{len(unused)} indexes never scanned, but the statistics cover {observed:.1f} days < "
                    f"{t.unused_index_min_days:g} (thresholds.unused_index_min_days): too soon to call them unused")
    expect_none("indexes never scanned (not unique, not a constraint's)", unused,
                lambda u: f"{u.index} on {u.table} ({u.size_bytes} bytes, 0 scans since {u.observed_since:%Y-%m-%d})")


@pytest.mark.monthly
@check(id="postgres.redundant-indexes", title="No duplicate or overlapping index", section=SECTION, severity="low",
       remediation="postgres.drop-unused-index",
       depends=("primary",))
def test_no_redundant_index(env):
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        redundant = maintenance.redundant_indexes(primary)
    evidence("indexes covered by another index", redundant)
    expect_none("indexes whose columns lead another index of the same table", redundant,
                lambda r: f"{r.index} covered by {r.covered_by} on {r.table}")


@pytest.mark.monthly
@check(id="jobs.archive-due", title="No finished job older than 90 days in optimization_jobs", section=SECTION, severity="low",
       remediation="jobs.archive-old",
       depends=("primary",))
def test_old_jobs_archived(env):
    days = env.thresholds.job_retention_days
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        old = maintenance.old_jobs(primary, days)
    evidence("finished jobs past the retention", old)
    expect(f"finished jobs older than {days:g} days" + (f" (oldest completed {old.oldest:%Y-%m-%d})" if old.oldest else ""),
           old.count, "==", 0)


@pytest.mark.monthly
@check(id="postgres.reindex-candidates", title="No B-tree index mostly empty space", section=SECTION, severity="low",
       remediation="postgres.reindex-bloated",
       depends=("primary",))
def test_reindex_candidates(env):
    t = env.thresholds
    with env.clients.postgres(env.config.postgres.primary_dsn, name="primary") as primary:
        bloat = maintenance.index_bloat(primary, t.bloat_min_bytes)
    evidence("index bloat (estimate)", bloat[:50])
    expect_none(f"B-tree indexes of at least {t.bloat_min_bytes} bytes over {t.bloat_max_ratio:.0%} bloat",
                [b for b in bloat if b.ratio > t.bloat_max_ratio], lambda b: f"{b.relation} on {b.table} {b.ratio:.0%} of {b.size_bytes} bytes")
