"""Metrics for dashboards, with prometheus-client: what a run measured, as a textfile-collector file and/or pushed
to a Pushgateway, grouped by environment and marker.

Per check: its outcome (an Enum), each numeric reading and its threshold, its duration. Per run: the counts by
outcome and the wall time. What a check records beside its readings (a chaos experiment's detection and recovery
seconds, a load run's p95, requests per second and failure ratio) is exported under its own name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Enum, Gauge, push_to_gateway, write_to_textfile

from entmoot_ops.results import OUTCOMES, CheckResult

PREFIX = "entmoot"


def registry(environment: str, results: Iterable[CheckResult], wall_seconds: float, finished_at: float) -> CollectorRegistry:
    found = CollectorRegistry()
    outcome = Enum(f"{PREFIX}_check_outcome", "Outcome of the check in its latest run", ["environment", "check"],
                   states=list(OUTCOMES), registry=found)
    value = Gauge(f"{PREFIX}_check_value", "A numeric reading of the check (ratios as ratios)", ["environment", "check", "reading"],
                  registry=found)
    threshold = Gauge(f"{PREFIX}_check_threshold", "The threshold that reading was held to", ["environment", "check", "reading"],
                      registry=found)
    duration = Gauge(f"{PREFIX}_check_duration_seconds", "How long the check took", ["environment", "check"], registry=found)
    recorded: dict[str, Gauge] = {}
    counts: Counter[str] = Counter()
    for result in results:
        if result.env != environment:
            continue
        counts[result.outcome] += 1
        outcome.labels(environment, result.check_id).state(result.outcome)
        duration.labels(environment, result.check_id).set(result.duration_seconds)
        for reading in result.values:
            if reading.get("value") is not None:
                value.labels(environment, result.check_id, reading["label"]).set(reading["value"])
            if reading.get("limit") is not None:
                threshold.labels(environment, result.check_id, reading["label"]).set(reading["limit"])
        for name, number, labels in result.recorded:
            metric = f"{PREFIX}_{re.sub(r'[^a-zA-Z0-9_]', '_', name)}"
            if metric not in recorded:
                recorded[metric] = Gauge(metric, f"Recorded by checks: {name}", ["environment", "check", *sorted(labels)],
                                         registry=found)
            recorded[metric].labels(environment, result.check_id, *(labels[k] for k in sorted(labels))).set(number)
    checks = Gauge(f"{PREFIX}_run_checks", "Checks of the latest run, by outcome", ["environment", "outcome"], registry=found)
    for name in OUTCOMES:
        checks.labels(environment, name).set(counts[name])
    Gauge(f"{PREFIX}_run_wall_seconds", "Wall time of the latest run", ["environment"], registry=found).labels(environment).set(wall_seconds)
    Gauge(f"{PREFIX}_run_finished_timestamp_seconds", "When the latest run finished (alert on staleness)", ["environment"],
          registry=found).labels(environment).set(finished_at)
    return found


def textfile(directory: Path, environment: str, marker: str, metrics: CollectorRegistry) -> Path:
    """One file per environment and marker, for node_exporter's textfile collector (written atomically by the client)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{PREFIX}_{_safe(environment)}_{_safe(marker)}.prom"
    write_to_textfile(str(path), metrics)
    return path


def push(gateway: str, environment: str, marker: str, metrics: CollectorRegistry, timeout: float) -> None:
    push_to_gateway(gateway, job="entmoot-ops", registry=metrics, grouping_key={"environment": environment, "marker": marker},
                    timeout=timeout)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text) or "all"
