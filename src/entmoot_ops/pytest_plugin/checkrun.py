"""The check run: the wrapper around a check's call that opens its CheckRun, reads the evidence it deferred and draws
its charts (for a check that did not pass, or as --evidence and --charts ask), and hands a failure to its remediation."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from entmoot_ops import reports
from entmoot_ops.results import Outcome
from entmoot_ops.check import CheckRun, attach_chart, attach_held, best_effort, current_run, evidence
from entmoot_ops.pytest_plugin import memory
from entmoot_ops.pytest_plugin.remediation import remediate
from entmoot_ops.pytest_plugin.state import SUITE_KEY, env_name, spec_of

RUN_KEY = pytest.StashKey[CheckRun]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    spec = spec_of(item)
    if spec is None:
        return (yield)
    run = CheckRun(spec=spec, env=env_name(item))
    item.stash[RUN_KEY] = run
    token = current_run.set(run)
    reports.label(item, spec, item.config.stash[SUITE_KEY].environments.get(run.env))
    try:
        outcome = yield
    except AssertionError as failure:
        attach_held(run)  # what the check measured, before what its failure reads and what its remediation does
        _read_evidence(run, wanted=True)
        _draw_charts(run, wanted=_charts(item) != "none")
        if memory.silence_of(item, Outcome.FAIL) is not None:
            raise  # a known problem, silenced: its remediation is what the silence's reason says is under way
        acted = remediate(item, run, failure)
        if acted is not None:
            raise acted from None
        raise
    except BaseException:
        skipped = isinstance(sys.exc_info()[1], pytest.skip.Exception)
        _read_evidence(run, wanted=not skipped or _all_evidence(item))
        _draw_charts(run, wanted=_charts(item) == "all" or (_charts(item) == "failures" and not skipped))
        raise
    else:
        _read_evidence(run, wanted=_all_evidence(item))
        _draw_charts(run, wanted=_charts(item) == "all")
        return outcome
    finally:
        attach_held(run)
        current_run.reset(token)


def _all_evidence(item: pytest.Item) -> bool:
    chosen = item.config.getoption("entmoot_evidence")
    environment = item.config.stash[SUITE_KEY].environments.get(env_name(item))
    return (chosen or (environment.evidence if environment else "failures")) == "all"


def _charts(item: pytest.Item) -> str:
    return item.config.getoption("entmoot_charts")


def _draw_charts(run: CheckRun, *, wanted: bool) -> None:
    from entmoot_ops import charts

    drawn, run.charts = run.charts, []
    for title, read in drawn if wanted else ():
        attach_chart(title, lambda read=read: charts.series(read()))


def _read_evidence(run: CheckRun, *, wanted: bool) -> None:
    """The evidence reads a check deferred: done for a check that did not pass (or on --evidence all), each best
    effort. Whatever they meet, the verdict is the check's own."""
    reads, run.deferred = run.deferred, []
    for name, read in reads if wanted else ():
        evidence(name, best_effort(name, read))
