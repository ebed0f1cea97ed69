"""A game day: experiments run in a given order against one environment, a pause for recovery between them, and
one report of them all (``reports/gameday/``, and a result of its own in Allure): for each experiment, detected
or not, detection and recovery seconds, rollbacks and false alarms, with a chart.

``entmoot-ops chaos gameday`` runs ``pytest checks/ -m chaos --gameday a,b``; the plugin orders the experiments,
each check hands its journal here, and the report is written when the run ends.
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from entmoot_ops import charts, progress
from entmoot_ops.reports import write_result
from entmoot_ops.secrets import masker


NOTHING = "nothing to detect"  # an experiment whose fault the system absorbs


@dataclass(frozen=True)
class Row:
    experiment: str
    status: str  # the journal's: completed, aborted, not-run, error, rollback-failed
    detected: str  # "yes", "no: <detectors never seen>", or "nothing to detect" (a fault the system absorbs)
    detection_seconds: float | None  # until the last expected detector saw it
    recovery_seconds: float | None
    rollbacks: str
    false_alarms: tuple[str, ...]
    reason: str

    @property
    def held(self) -> bool:
        return (self.status == "completed" and self.detected in ("yes", NOTHING) and not self.false_alarms
                and self.recovery_seconds is not None)


def row(journal: dict[str, Any]) -> Row:
    seen = journal["detection_seconds"]
    missed = [check_id for check_id, seconds in seen.items() if seconds is None]
    ok = sum(1 for r in journal["rollbacks"] if r["ok"])
    failed = len(journal["rollbacks"]) - ok
    return Row(journal["experiment"], journal["status"],
               NOTHING if not seen else f"no: {', '.join(missed)}" if missed else "yes",
               max(seen.values()) if seen and not missed else None, journal["recovery_seconds"],
               f"{ok} ran" + (f", {failed} FAILED" if failed else ""), tuple(journal["false_alarms"]), journal["reason"])


@dataclass
class GameDay:
    """The experiments in their order, the pause between two, and the journals as they end."""
    order: tuple[str, ...]
    pause_seconds: float
    journals: list[dict[str, Any]] = field(default_factory=list)

    def before(self, experiment: str) -> None:
        if self.journals and self.pause_seconds > 0:
            progress.write(f"game day: {self.pause_seconds:g} s for the system to settle before {experiment}")
            time.sleep(self.pause_seconds)

    def record(self, journal: dict[str, Any]) -> None:
        self.journals.append(journal)

    def write(self, env: str, directory: Path, allure_results: Path | None) -> Path:
        """The report as JSON, HTML and a PNG chart in ``directory``, and as an Allure result; returns the HTML."""
        rows = [row(journal) for journal in self.journals]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        directory.mkdir(parents=True, exist_ok=True)
        title = f"game day on {env}, {stamp}: {sum(r.held for r in rows)} of {len(rows)} experiments held"
        chart = charts.gameday(title, [(r.experiment, r.detection_seconds, r.recovery_seconds) for r in rows])
        page = _html(title, rows, chart)
        base = directory / f"gameday-{env}-{stamp}"
        base.with_suffix(".json").write_text(masker.dumps({"env": env, "title": title, "order": self.order,
                                                           "experiments": [asdict(r) for r in rows],
                                                           "journals": self.journals}, indent=2) + "\n")
        base.with_suffix(".png").write_bytes(chart)
        base.with_suffix(".html").write_text(page)
        if allure_results is not None:
            write_result(allure_results, f"Game day on {env}", f"entmoot-ops.gameday.{env}",
                         "passed" if all(r.held for r in rows) else "failed", title,
                         [("game day", page.encode(), "text/html", "html"), ("detection and recovery", chart, "image/png", "png")],
                         suite="chaos game day")
        return base.with_suffix(".html")


def _html(title: str, rows: list[Row], chart: bytes) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("experiment", "status", "detected", "detection (s)", "recovery (s)",
                                               "rollbacks", "false alarms", "reason"))
    body = "".join(
        f"<tr class={'held' if r.held else 'broke'}><td>{html.escape(r.experiment)}</td><td>{r.status}</td>"
        f"<td>{html.escape(r.detected)}</td><td>{_seconds(r.detection_seconds)}</td><td>{_seconds(r.recovery_seconds)}</td>"
        f"<td>{html.escape(r.rollbacks)}</td><td>{html.escape(', '.join(r.false_alarms) or 'none')}</td>"
        f"<td>{html.escape(r.reason)}</td></tr>" for r in rows)
    return masker(f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title><style>"
                  "body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:3px 6px}table{border-collapse:collapse}"
                  "tr.broke td{background:#fdd}</style></head><body>"
                  f"<h1>{html.escape(title)}</h1><table><tr>{head}</tr>{body}</table>"
                  f"<p><img alt='detection and recovery' src='data:image/png;base64,{base64.b64encode(chart).decode()}'></p>"
                  "</body></html>\n")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
