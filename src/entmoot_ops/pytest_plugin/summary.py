"""The run's summary on the terminal (and after Ctrl-C, what was judged), its summary.json and Allure metadata, and
what it exports: notifications ([notify]) and metrics ([metrics])."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from entmoot_ops import outcomes, reports
from entmoot_ops.config import Environment
from entmoot_ops.errors import one_line
from entmoot_ops.pytest_plugin import memory
from entmoot_ops.pytest_plugin.results import run_of
from entmoot_ops.pytest_plugin.state import SESSION_KEY, SUITE_KEY, Suite
from entmoot_ops.results import CheckResult
from entmoot_ops.secrets import masker


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    suite = config.stash.get(SUITE_KEY, None)
    if suite is None:
        return
    results = outcomes.collector.drain()
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        # What a person needs after Ctrl-C: which check it stopped, and how much was judged. An experiment's rollbacks
        # have run by now (its runner's finally); a remediation in progress is in the audit log.
        judged = {r.nodeid for r in results}
        session = config.stash.get(SESSION_KEY, None)
        left = [item.nodeid for item in (session.items if session else []) if item.nodeid not in judged]
        stopped = f" during {suite.running}" if suite.running and suite.running not in judged else ""
        terminalreporter.write_line(f"interrupted{stopped}: {len(judged)} check(s) judged, {len(left)} not judged; "
                                    "an experiment's rollbacks ran, an action's record is in the audit log", red=True)
    if not results:
        return
    remembered = memory.remember(config, results)
    outcomes.write_summary(terminalreporter, results, [p.line() for p in suite.preflights.values() if not p.ok])
    for line in [*remembered, *memory.silence_lines(config, results)]:
        terminalreporter.write_line(masker(line), yellow=True)
    if suite.reports_dir is not None:
        reports.write_allure_metadata(Path(config.option.allure_report_dir), suite.environments.values())
        wall = time.monotonic() - suite.began
        marker = config.option.markexpr or "all"
        reports.write_summary_json(suite.reports_dir / "summary.json", results, marker=marker, wall_seconds=wall,
                                   run=run_of(config))
        say = lambda line: terminalreporter.write_line(line, yellow=True)  # noqa: E731
        for environment in suite.environments.values() if config.getoption("entmoot_export") else ():
            _export_metrics(environment, results, marker, wall, say)
            _notify(suite, environment, results, say)


def _notify(suite: Suite, environment: Environment, results: list[CheckResult], say: Any) -> None:
    settings = environment.notify
    if not (settings.slack_webhook or settings.pagerduty_routing_key or settings.webhook):
        return
    from entmoot_ops import notify

    state = Path(settings.state_file) if settings.state_file else suite.reports_dir / "notify-state.json"
    notify.notify(environment, results, notify.StateFile(state), suite.resolver(environment.name), say)


def _export_metrics(environment: Environment, results: list[CheckResult], marker: str, wall: float, say: Any) -> None:
    """A textfile-collector file per environment and marker, and a push, each where configured. A failure is one
    line: dashboards never cost a verdict."""
    settings = environment.metrics
    if not (settings.textfile_dir or settings.pushgateway):
        return
    from entmoot_ops import metrics

    try:
        registry = metrics.registry(environment.name, results, wall, time.time())
        if settings.textfile_dir:
            metrics.textfile(Path(settings.textfile_dir), environment.name, marker, registry)
        if settings.pushgateway:
            metrics.push(settings.pushgateway, environment.name, marker, registry, settings.timeout_seconds)
    except Exception as exc:  # noqa: BLE001 - see above
        say(masker(f"metrics [{environment.name}]: not exported: {one_line(exc)}"))
