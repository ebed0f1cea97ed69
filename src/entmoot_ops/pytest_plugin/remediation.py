"""The remediation of a failing check: its plan (always), and on --remediate its action, audited, then the check
run again until it passes or the deadline passes."""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING

import pytest

from entmoot_ops import progress, reports
from entmoot_ops.breaker import fresh
from entmoot_ops.check import CheckRun, Fixed, NotFixed, finding
from entmoot_ops.clients import Clients
from entmoot_ops.errors import OpsError
from entmoot_ops.pytest_plugin.options import checks_arg
from entmoot_ops.pytest_plugin.state import SUITE_KEY, component
from entmoot_ops.remediation import REGISTRY, RemediationContext, describe_changes
from entmoot_ops.results import RemediationState

if TYPE_CHECKING:
    from entmoot_ops.pytest_plugin.state import Target

PLAN_KEY = pytest.StashKey[list[str]]()
REMEDIATION_KEY = pytest.StashKey[str]()  # a RemediationState, said with its detail
ACTED_KEY = pytest.StashKey[tuple[list[str], str]]()  # what a remediation changed, and what the re-check found


def _recheck(item: pytest.Item, run: CheckRun, deadline: float, interval: float) -> tuple[bool, str]:
    """Run the check body again until it passes or the deadline passes; the last failure is returned."""
    last = ""
    check_progress = progress.Progress(f"verifying {run.spec.id} after the remediation (deadline "
                                       f"{deadline - time.monotonic():.0f} s)")
    while True:
        run.readings.clear()
        try:
            with fresh():  # after a fix, nothing remembered from before it counts: readings and open circuits
                item.runtest()
            return True, ""
        except AssertionError as exc:
            last = finding(exc)
        except pytest.skip.Exception as exc:  # cannot judge yet (e.g. no traffic since the fix): keep polling
            last = f"not judged yet: {exc.msg}"
        except OpsError as exc:  # a dependency flapping while the fix settles: keep polling until the deadline
            last = f"could not measure: {exc}"
        if time.monotonic() + interval > deadline:
            return False, last
        check_progress(last)
        time.sleep(interval)


def rerun_command(config: pytest.Config, check_id: str, env: str) -> str:
    """The command that runs this one check again, as this run ran it (its environments' directory, the gate's version)."""
    named = component(check_id)
    # A load run or an experiment is an action of its own mode (its IAM policy, its confirmation): -m names it.
    command = ["pytest", checks_arg(config), *(("-m", named) if named in ("load", "chaos") else ()), "--check", check_id, "--env", env]
    for option, flag in (("entmoot_envdir", "--environments-dir"), ("entmoot_expected_version", "--expected-version")):
        if config.getoption(option):
            command += [flag, config.getoption(option)]
    return shlex.join(command)


def remediate(item: pytest.Item, run: CheckRun, failure: AssertionError) -> AssertionError | None:
    """Plan (always) and, on --remediate, act and verify. What it changed, with the readings before and after: as
    :class:`Fixed` or :class:`NotFixed`; None when it did not act (its plan is then what a person carries out)."""
    suite = item.config.stash[SUITE_KEY]
    target: Target = item.funcargs["env"]
    remediation = REGISTRY[run.spec.remediation]
    writable = Clients(target.config, writable=True, preflight=target.clients.preflight)
    context = RemediationContext(env=target.config, readonly=target.clients, writable=writable,
                                 check_id=run.spec.id, failure=str(failure))
    try:
        with fresh():
            plan = remediation.plan(context)
    except OpsError as exc:
        plan = [f"(could not prepare the plan: {exc})"]
    plan.append(f"re-run: {rerun_command(item.config, run.spec.id, target.name)}")

    def planned(state: RemediationState, detail: str = "") -> None:
        item.stash[REMEDIATION_KEY] = state.said(detail)
        item.stash[PLAN_KEY] = plan
        reports.attach_plan(remediation, plan)

    if not suite.remediate:
        return planned(RemediationState.PLANNED)
    audit = dict(env=target.name, check_id=run.spec.id, remediation_id=remediation.id)
    if remediation.act is None:
        return planned(RemediationState.MANUAL)
    if target.config.production and not suite.confirmed:
        suite.audit.write(event="refused", reason="production environment without --yes", plan=plan, **audit)
        return planned(RemediationState.REFUSED, "production needs --yes")
    suite.acted += 1  # from here on, what the checks read before may have changed (concurrency)
    try:
        with fresh():
            changes = remediation.act(context)
    except OpsError as exc:
        suite.audit.write(event="action-failed", error=str(exc), plan=plan, **audit)
        return planned(RemediationState.ACTION_FAILED, exc.with_fix())
    finally:
        context.writable.close()
    suite.audit.write(event="acted", changes=describe_changes(changes), failure=str(failure), **audit)
    reports.attach_changes(changes)
    settings = target.config.remediation
    fixed, last = _recheck(item, run, time.monotonic() + settings.verify_timeout_seconds, settings.verify_interval_seconds)
    suite.audit.write(event="verified" if fixed else "not-fixed", recheck=last or "passed", **audit)
    done = [change.describe() for change in changes] or ["acted"]
    recheck = ("; ".join(r.describe() for r in run.readings) or "passed") if fixed else last
    item.stash[REMEDIATION_KEY] = (RemediationState.FIXED if fixed else RemediationState.NOT_FIXED).said()
    item.stash[ACTED_KEY] = (done, recheck)
    before = finding(failure)
    if fixed:
        return Fixed(f"fixed by {remediation.id} ({'; '.join(done)}); before: {before}; after: {recheck}")
    return NotFixed(f"not fixed by {remediation.id} ({'; '.join(done)}): after it, {recheck}; before: {before}")

