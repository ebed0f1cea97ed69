"""The detection matrix: every fault the sandbox offers, injected one at a time under steady API traffic, against
the morning, alerts, handoff, evening, incident, weekly, monthly and host checks. For each fault: the checks expected to detect it, which did
and how fast, and false alarms (checks that turned red although nothing expected them to). This is how the
suite measures its own detection power; a fault the sandbox offers that has no row here is an error.
"""

from __future__ import annotations

import html
import json
import statistics
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


from entmoot_ops import progress
from entmoot_ops.chaos import observe
from entmoot_ops.check import Unavailable, best_effort
from entmoot_ops.errors import OpsError

CHECKLISTS = "morning or alerts or handoff or evening or incident or weekly or monthly or hosts"


@dataclass(frozen=True)
class Expectation:
    fault: str
    params: dict[str, Any] = field(default_factory=dict)
    detectors: tuple[str, ...] = ()  # must turn red (fail or error)
    # What the fault breaks (check.DEPENDENCIES): every check declaring a dependency on it may turn red.
    breaks: tuple[str, ...] = ()
    # Checks that may turn red because the fault really causes a second condition (named here, with the reason in
    # the note), beyond what depends on what it breaks.
    also: tuple[str, ...] = ()
    note: str = ""
    deadline_seconds: float | None = None  # longer than the matrix's for a fault only a sustained window can see

    @property
    def name(self) -> str:
        return self.fault + "".join(f" {k}={v}" for k, v in self.params.items())


_SERVED = ("api", "traffic")  # the API is down or failing: what it serves and its own endpoint
EXPECTATIONS: tuple[Expectation, ...] = (
    # Its 500s reach the API's own routes too: api.auth-enforced cannot judge auth on a 500, and says so.
    Expectation("api_errors", {"rate": 0.5}, ("api.error-rate", "api.error-rate-handoff"), _SERVED),
    Expectation("slow_endpoints", {"paths": {"/api/projects": 1500}}, ("api.slow-endpoints",), ("traffic",)),
    Expectation("memory_leak", {}, ("ecs.utilisation",), _SERVED),
    Expectation("api_latency", {"ms": 800}, ("api.latency-p95", "incident.response-time"), ("traffic",), deadline_seconds=90,
                note="p95 over thresholds.latency_window_minutes: 5% of the window's requests must be slow first"),
    Expectation("api_degraded", {}, ("api.health",), ("api",)),
    Expectation("api_auth_disabled", {}, ("api.auth-enforced",), ("api",)),
    Expectation("api_storage_fallback", {}, ("api.health",), ("api",)),
    Expectation("api_task_rate", {"rate": 1000}, (), note="more capacity per task: not a fault, nothing may turn red"),
    Expectation("ecs_stuck_rollout", {}, ("ecs.service-steady",)),
    Expectation("alarm", {}, ("alarms.none-firing",)),
    Expectation("aws_throttled", {"service": "ecs"}, ("ecs.service-steady",), ("aws",),
                note="every ECS call answers Rate exceeded: what reads ECS cannot measure"),
    Expectation("insights_slow", {"seconds": 3}, (), note="Logs Insights is slow, not wrong: nothing may turn red"),
    Expectation("insights_failed", {}, (), note="the log reads fall back to FilterLogEvents: nothing may turn red"),
    *(Expectation(fault, {"component": "api"}, ("api.health",), _SERVED) for fault in ("component_killed", "component_frozen")),
    *(Expectation(fault, {"component": "primary"}, ("postgres.connections", "api.health"), ("primary", "replica", *_SERVED))
      for fault in ("component_killed", "component_frozen")),
    Expectation("component_killed", {"component": "replica"}, ("replication.streaming",), ("replica",), ("replication.slots-active",),
                note="the primary's slot for the replica goes inactive"),
    Expectation("component_frozen", {"component": "replica"}, ("replication.lag",), ("replica",),
                ("replication.streaming", "replication.slots-active"), note="the primary sees the frozen replica stop streaming"),
    *(Expectation(fault, {"component": "redis"}, ("redis.reachable", "redis.connection", "api.health"), ("redis", *_SERVED))
      for fault in ("component_killed", "component_frozen")),
    Expectation("redis_password_changed", {}, ("redis.connection", "redis.reachable"), ("redis", *_SERVED)),
    Expectation("redis_oom", {}, ("redis.oom",), ("redis", *_SERVED)),
    *(Expectation(fault, {"dependency": "redis", **extra}, ("api.health",), _SERVED, ("redis.hit-rate", "redis.evictions"),
                  note="the API's cache reads fail or time out: its hits and misses change")
      for fault, extra in (("dependency_latency", {"ms": 1500}), ("dependency_blackhole", {}))),
    *(Expectation(fault, {"dependency": "primary", **extra}, ("api.health",), _SERVED)
      for fault, extra in (("dependency_latency", {"ms": 1500}), ("dependency_blackhole", {}))),
    Expectation("redis_flushed", {}, (), ("redis",), note="the application refills the cache"),
    Expectation("certificate_expiring", {"days": 3}, ("tls.api-certificate", "tls.acm-certificate")),
    Expectation("certificate_wrong_host", {}, ("tls.api-certificate",),
                note="ACM holds it, issued and fresh: only a client's handshake sees the wrong name"),
    Expectation("clock_skew", {"seconds": 5}, ("hosts.clock",)),
    Expectation("tool_missing", {"tool": "jq"}, ("hosts.tools",)),
    Expectation("redis_requirepass_missing", {}, ("hosts.redis-config",)),
    Expectation("replica_paused", {}, ("replication.lag",), ("replica",)),
    Expectation("slot_inactive", {}, ("replication.slots-active",)),
    Expectation("redis_memory_pressure", {}, ("redis.evictions",), ("redis",)),
    Expectation("redis_client_pressure", {}, ("redis.reachable",), ("redis",)),
    Expectation("redis_cold_cache", {}, ("redis.hit-rate",), ("redis",)),
    Expectation("rds_cpu_pressure", {"percent": 95}, ("rds.cpu-sustained", "cpu.high"), deadline_seconds=120,
                note="sustained means every period of thresholds.rds_cpu_window_minutes: detected no sooner"),
    Expectation("rds_low_storage", {"free_ratio": 0.05}, ("rds.free-storage",)),
    Expectation("rds_unavailable", {}, ("rds.available",)),
    Expectation("jobs_stuck", {}, ("jobs.pending-age", "jobs.stuck-running")),
    Expectation("idle_sessions", {"count": 45}, ("postgres.connections",)),
    Expectation("idle_in_transaction", {"count": 2}, (), note="judged after idle_in_transaction_max_seconds (300 s) by -m incident"),
    Expectation("long_query", {"seconds": 600}, (), note="judged after long_query_max_seconds (300 s) by -m incident"),
    Expectation("seq_scans", {}, ("postgres.seq-scan-tables",)),
    Expectation("deploy", {"version": "1.5.0"}, (), note="a good release: nothing may turn red"),
    Expectation("deploy", {"version": "1.5.1", "error_rate": 0.5}, ("api.error-rate", "api.error-rate-handoff"), _SERVED),
    Expectation("stale_backups", {}, ("backup.latest-snapshot",)),
    Expectation("pitr_lag", {}, ("backup.point-in-time",)),
    Expectation("cloudtrail_event", {"kind": "root_usage"}, ("security.unusual-activity",)),
    Expectation("traffic_drop", {}, ("traffic.daily-vs-last-week",)),
    Expectation("stale_table", {}, ("postgres.analyze-fresh", "postgres.vacuum-fresh")),
    Expectation("bloated_table", {}, ("postgres.table-bloat", "postgres.reindex-candidates")),
    Expectation("invalid_index", {}, ("postgres.invalid-indexes",)),
    Expectation("unused_index", {}, (), note="judged once the statistics cover thresholds.unused_index_min_days (30 days)"),
    Expectation("redundant_index", {}, ("postgres.redundant-indexes",)),
    Expectation("sequence_near_exhaustion", {}, ("postgres.sequences",)),
    Expectation("gist_dropped", {}, ("postgres.spatial-index-used",), ("traffic",), ("postgres.seq-scan-tables", "postgres.top-statements"),
                note="without the index the application's spatial reads scan the table, and its statements slow down"),
    Expectation("old_jobs", {}, ("jobs.archive-due",)),
    Expectation("slow_statement", {}, ("postgres.slow-statements",), (), ("postgres.top-statements",),
                note="the slow statement is also the top statement by mean time"),
    Expectation("redis_keys_without_ttl", {}, ("redis.ttl-policy", "redis.unpersisted-keys")),
)


@dataclass
class Row:
    name: str  # the expectation's: the fault and its parameters
    fault: str
    params: dict[str, Any]
    expected: list[str]
    detected: dict[str, float]  # check id -> seconds from injection to the observation that saw it red
    missed: list[str]
    false_alarms: dict[str, str]  # check id -> its verdict
    blast_radius: list[str]  # what may turn red besides the detectors: derived from what the fault breaks, and its also
    note: str
    seconds: float
    error: str = ""

    @property
    def caught(self) -> bool:
        return not self.missed and not self.error


def uncovered(faults: set[str]) -> set[str]:
    """Faults the sandbox offers with no row in the matrix."""
    return faults - {e.fault for e in EXPECTATIONS}


@dataclass
class Matrix:
    checks: observe.CheckRunner
    sandbox: Any  # SandboxHandle
    deadline_seconds: float = 30
    settle_seconds: float = 45  # after each fault: until the checklists hold again
    poll_seconds: float = 1

    def run(self, expectations: tuple[Expectation, ...] = EXPECTATIONS) -> list[Row]:
        ticker = progress.Progress("detection matrix")
        baseline = self._healthy(ticker, "baseline")
        rows = []
        for index, expectation in enumerate(expectations, 1):
            ticker(f"{index}/{len(expectations)} {expectation.name}")
            rows.append(self._row(expectation, set(baseline.outcomes)))
            self._healthy(ticker, f"recovery after {expectation.name}")
        return rows

    def _healthy(self, ticker: progress.Progress, what: str) -> observe.Observation:
        deadline = time.monotonic() + self.settle_seconds
        while True:
            seen = self.checks.run(markers=CHECKLISTS)
            if seen.holds():
                return seen
            if time.monotonic() > deadline:
                raise OpsError(f"the checklists do not hold ({what}): {seen.describe()}",
                               fix="fix the sandbox first: entmoot-ops sandbox down, then up")
            ticker(f"{what}: waiting for {', '.join(sorted(seen.failing()))}")
            time.sleep(self.poll_seconds)

    def _row(self, expectation: Expectation, baseline: set[str]) -> Row:
        expected = set(expectation.detectors)
        detected: dict[str, float] = {}
        false_alarms: dict[str, str] = {}
        radius: set[str] = set()
        started = time.time()
        error = ""
        try:
            self.sandbox.inject(expectation.fault, **expectation.params)
        except OpsError as exc:
            error = str(exc)
        try:
            # A fault nothing should see is watched for a while: a false alarm may take a few observations.
            deadline = expectation.deadline_seconds or self.deadline_seconds
            until = time.time() + (deadline if expected else min(deadline, 10))
            while not error:  # no sync: metrics reach CloudWatch by themselves, as they do on AWS
                seen = self.checks.run(markers=CHECKLISTS)
                radius |= seen.depending_on(expectation.breaks) | set(expectation.also)
                for check_id in seen.failing(baseline):
                    if check_id in expected and seen.ended - started <= deadline:  # later than that is a miss
                        detected.setdefault(check_id, round(seen.ended - started, 2))
                    elif check_id not in radius:
                        false_alarms.setdefault(check_id, f"{seen.outcomes[check_id].upper()}: {seen.messages[check_id]}")
                if (expected and expected <= detected.keys()) or time.time() > until:
                    break
                time.sleep(self.poll_seconds)
        finally:
            if not error:
                self.sandbox.undo(expectation.fault)
        return Row(expectation.name, expectation.fault, expectation.params, sorted(expected), detected, sorted(expected - detected.keys()),
                   false_alarms, sorted(radius - expected), expectation.note, round(time.time() - started, 2), error)


def summary(rows: list[Row]) -> dict[str, Any]:
    latencies = [s for r in rows for s in r.detected.values()]
    return {"faults": len(rows), "caught": sum(r.caught for r in rows), "missed": sum(not r.caught for r in rows),
            "false_alarms": sum(len(r.false_alarms) for r in rows),
            "median_detection_seconds": round(statistics.median(latencies), 2) if latencies else None,
            "max_detection_seconds": max(latencies, default=None)}


def write(rows: list[Row], directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    totals = summary(rows)
    paths = {"json": directory / "matrix.json", "html": directory / "matrix.html", "junit": directory / "matrix-junit.xml"}
    paths["json"].write_text(json.dumps({"summary": totals, "rows": [{**asdict(r), "caught": r.caught}
                                                                    for r in rows]}, indent=2) + "\n")
    grid = best_effort("the matrix as a grid", lambda: _grid(rows, totals))
    if not isinstance(grid, Unavailable):  # charts need matplotlib (the charts extra): without it, the table alone
        paths["png"] = directory / "matrix.png"
        paths["png"].write_bytes(grid)
    paths["html"].write_text(_html(rows, totals, with_grid="png" in paths))
    paths["junit"].write_bytes(_junit(rows, totals))
    return paths


def _grid(rows: list[Row], totals: dict[str, Any]) -> bytes:
    """A row per fault, a column per check that was expected or turned red: its detection seconds (green), MISSED
    (red) or a false alarm (orange)."""
    from entmoot_ops import charts

    columns = sorted({c for r in rows for c in (*r.expected, *r.false_alarms)})
    cells: dict[tuple[str, str], tuple[str, str]] = {}
    for r in rows:
        cells.update({(r.name, c): (f"{s:g}", "#b7e1b0") for c, s in r.detected.items() if c in columns})
        cells.update({(r.name, c): ("MISSED", "#f4a6a6") for c in r.missed})
        cells.update({(r.name, c): ("false", "#f7c873") for c in r.false_alarms})
    return charts.grid(f"Detection matrix: {totals['caught']} of {totals['faults']} caught, {totals['false_alarms']} false alarms, "
                       f"median {totals['median_detection_seconds']} s", [r.name for r in rows], columns, cells)


def _html(rows: list[Row], totals: dict[str, Any], *, with_grid: bool) -> str:
    def cell(text: str, bad: bool = False) -> str:
        return f'<td class="{"bad" if bad else ""}">{html.escape(text)}</td>'

    body = "".join(
        "<tr>" + cell(r.name) + cell(", ".join(r.expected) or "(none)")
        + cell(", ".join(f"{c} {s:g} s" for c, s in r.detected.items()) or "-")
        + cell(", ".join(r.missed) or r.error or "-", bad=not r.caught)
        + cell("; ".join(f"{c} {v}" for c, v in r.false_alarms.items()) or "-", bad=bool(r.false_alarms))
        + cell(r.note) + "</tr>" for r in rows)
    head = "".join(f"<th>{h}</th>" for h in ("fault", "expected detectors", "detected (latency)", "missed", "false alarms", "note"))
    return ("<!doctype html><meta charset=utf-8><title>Entmoot detection matrix</title><style>body{font-family:sans-serif}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}"
            ".bad{background:#fdd}</style><h1>Detection matrix</h1>"
            f"<p>{totals['caught']} of {totals['faults']} faults caught, {totals['missed']} missed, {totals['false_alarms']} false "
            f"alarms; median detection latency {totals['median_detection_seconds']} s.</p>"
            + ('<p><img src="matrix.png" alt="the matrix as a grid" style="max-width:100%"></p>' if with_grid else "")
            + f"<table><tr>{head}</tr>{body}</table>\n")


def _junit(rows: list[Row], totals: dict[str, Any]) -> bytes:
    suite = ET.Element("testsuite", name="detection-matrix", tests=str(len(rows)),
                       failures=str(sum(1 for r in rows if r.missed or r.false_alarms)), errors=str(sum(1 for r in rows if r.error)))
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname="detection-matrix", name=r.name, time=f"{r.seconds:.2f}")
        if r.error:
            ET.SubElement(case, "error", message=r.error)
        elif r.missed or r.false_alarms:
            ET.SubElement(case, "failure", message="; ".join(
                [f"missed by {', '.join(r.missed)}"] * bool(r.missed) + [f"false alarm {c}: {v}" for c, v in r.false_alarms.items()]))
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)
