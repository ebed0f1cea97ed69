"""Verdicts: each check's report made a verdict of one line (FAIL, FIXED, ERROR with its fix) and a CheckResult,
masked once, carried to junit's properties and to the run's collector of results."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import allure
import pytest

from entmoot_ops import outcomes
from entmoot_ops.check import Fixed, finding
from entmoot_ops.errors import OpsError, one_line
from entmoot_ops.pytest_plugin import memory
from entmoot_ops.pytest_plugin.checkrun import RUN_KEY
from entmoot_ops.pytest_plugin.remediation import ACTED_KEY, PLAN_KEY, REMEDIATION_KEY
from entmoot_ops.pytest_plugin.state import DURATION_KEY, SUITE_KEY, env_name, spec_of
from entmoot_ops.results import CheckResult, Outcome
from entmoot_ops.runbook import link
from entmoot_ops.secrets import masker


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report = yield
    spec = spec_of(item)
    if spec is None:
        return report
    error = call.excinfo.value if call.excinfo is not None else None
    if report.when == "call" and report.failed and not isinstance(error, AssertionError):
        # Could not measure is not a breached threshold: pytest counts a failure outside the call phase as an
        # error, in its progress, its closing line and junit (<error>, not <failure>).
        report.when = "setup"
    if error is not None and (verdict := _verdict(item, error)) is not None:
        report.longrepr = verdict  # a failure in set-up (a fixture's) is not rendered by repr_failure
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        report.longrepr = masker(str(report.longrepr))
    report.sections = [(title, masker(text)) for title, text in report.sections]
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        run = item.stash.get(RUN_KEY, None)
        env = env_name(item)
        suite = item.config.stash[SUITE_KEY]
        environment = suite.environments.get(env)
        plan = item.stash.get(PLAN_KEY, [])
        done, recheck = item.stash.get(ACTED_KEY, ([], ""))
        outcome = outcomes.classify(report, call, item.stash.get(REMEDIATION_KEY, ""))
        silenced = memory.silence_of(item, outcome) if outcome in (Outcome.FAIL, Outcome.ERROR) else None
        result = CheckResult(
            check_id=spec.id,
            title=spec.title,
            env=env,
            nodeid=item.nodeid,
            outcome=Outcome.SILENCED if silenced else outcome,
            severity=spec.severity,
            section=link(environment.runbook_url, spec.section) if environment else spec.section,
            measured="; ".join(r.measured for r in run.readings) if run else "",
            threshold="; ".join(r.threshold for r in run.readings) if run else "",
            readings=[r.describe() for r in run.readings] if run else [],
            fix=error.fix if isinstance(error, OpsError) else "",
            remediation=spec.remediation,
            remediation_state=item.stash.get(REMEDIATION_KEY, ""),
            message=_message(report, error),
            finding=finding(error) if isinstance(error, AssertionError) else "",
            plan=plan,
            done=done,
            recheck=recheck,
            depends=list(spec.depends),
            touched=sorted(run.touched) if run else [],
            aws_actions=sorted(run.aws_actions) if run else [],
            duration_seconds=round(report.duration + item.stash.get(DURATION_KEY, 0.0), 3),
            values=[{"label": r.label, "value": r.value, "limit": r.limit, "unit": r.unit, "op": r.op, "gauge": r.gauge,
                     "measured": r.measured, "threshold": r.threshold}
                    for r in run.readings] if run else [],
            evidence=list(run.evidence) if run else [],
            recorded=[[name, value, labels] for name, value, labels in run.recorded] if run else [],
            resource=memory.resource_of(item),
        )
        result = replace(result, **memory.recollect(item.config, item, result))
        # Readings, plans and labels quote what was measured: masked once here, for every output that shows them.
        result = CheckResult(**masker.data(asdict(result)))
        if silenced is not None:
            memory.mark_silenced(report, item, silenced, result.finding or result.message)
        drawn = memory.chart(item.config, result, item.config.getoption("entmoot_charts"))
        if drawn is not None:
            allure.attach(drawn, name="readings over the last runs", attachment_type=allure.attachment_type.SVG)
        # On the item: junit writes the properties of the teardown report, which copies them from the item.
        item.user_properties.extend(result.as_properties())
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    result = CheckResult.from_properties(report.user_properties) if report.when == "teardown" else None
    if result is not None:
        outcomes.collector.append(result)


def _message(report: pytest.TestReport, error: BaseException | None) -> str:
    """The result's one line, from what the check raised (a skip's reason, as pytest keeps it), never read back from
    a rendered report."""
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if not report.failed or error is None:
        return ""
    if isinstance(error, (AssertionError, OpsError, LookupError)):
        return (str(error).strip().splitlines() or [""])[0]
    return one_line(error)


def _verdict(item: pytest.Item, error: BaseException) -> str | None:
    """An on-call engineer reads a verdict, not test source: one line unless --tb asks for more."""
    if item.config.option.tbstyle != "auto":
        return None
    if isinstance(error, Fixed):
        return f"FIXED {error}"
    if isinstance(error, AssertionError):
        return f"FAIL {error}"
    if isinstance(error, OpsError):
        return f"ERROR {error}" + (f"\n  fix: {error.fix}" if error.fix else "")
    if isinstance(error, LookupError):
        return f"ERROR {error}"
    return None


def renders_verdicts(item: pytest.Item) -> None:
    """pytest renders a failed call's traceback, source included, before any hook sees its report: a tenth of a
    failing run's CPU, for a text the verdict replaces. The check's item renders its verdict instead."""
    render_traceback = item.repr_failure

    def repr_failure(excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        verdict = _verdict(item, excinfo.value)
        return verdict if verdict is not None else render_traceback(excinfo)

    item.repr_failure = repr_failure
