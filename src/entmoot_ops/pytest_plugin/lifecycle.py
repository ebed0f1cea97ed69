"""The run's phases, each of which several concerns take part in: the session starting (the junit file held back),
the selection known (the preflight, once), the check that runs now, Ctrl-C, the session's end (refusals said, a
selection of nothing failed, the game day's report), and the end of a run of checks (os._exit once all is written)."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import shutil
import sys
from typing import Any

import pytest

from entmoot_ops.clients import close_ssh_connections
from entmoot_ops import outcomes
from entmoot_ops.pytest_plugin import concurrency, distribution, game_day, memory, results
from entmoot_ops.pytest_plugin.environments import run_preflights
from entmoot_ops.pytest_plugin.options import runs_checks
from entmoot_ops.pytest_plugin.state import SESSION_KEY, SUITE_KEY


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """The junit file is held back until checks really start, and the preflight waits for the selection: it
    starts a sandbox, which a selection of nothing must not cost."""
    config = session.config
    config.stash[SESSION_KEY] = session  # its exit status is final when pytest_unconfigure runs
    if hasattr(config, "workerinput") or config.option.collectonly or not runs_checks(config):
        return
    results.hold_junit(config)
    distribution.prepare_handoff(config)


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if config.option.collectonly or not runs_checks(config) or config.stash[SUITE_KEY].refused:
        return
    # What a check run has built by now (modules, botocore's service models, pydantic's validators, the items) lives
    # until it ends: frozen, it is not walked again by each full garbage collection, a tenth of a long run's CPU.
    gc.freeze()
    if hasattr(config, "workerinput") or not session.items:
        return
    results.start(config)
    run_preflights(config, meanwhile=lambda: _start_measuring(session))


def _start_measuring(session: pytest.Session) -> None:
    """Once references are resolved: the SSH connections warmed up, the environments' memory read, then the checks
    measured ahead of their turn."""
    distribution.open_ssh_connections(session.config, session.items)
    memory.start_recalling(session.config)
    concurrency.measure_ahead(session.items[0])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    suite = item.config.stash.get(SUITE_KEY, None)
    if suite is not None:
        suite.running = item.nodeid
    concurrency.measure_ahead(item, nextitem)


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """pytest's own account of Ctrl-C renders each frame of the interrupted traceback, and fails (TypeError) on one
    without a line number, as Ctrl-C while a context manager is entered leaves: the run then ended as if nothing had
    happened (exit 0, no word). Such frames say nothing to a person anyway: dropped before pytest renders them."""
    excinfo.traceback = excinfo.traceback.filter(_has_line_number)


def _has_line_number(entry: Any) -> bool:
    try:
        entry.lineno  # noqa: B018 - the property is what fails
    except TypeError:
        return False
    return True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    concurrency.stop_measuring(session)
    suite = session.config.stash.get(SUITE_KEY, None)
    if suite is not None and suite.refusal:
        print(f"ERROR: {suite.refusal}", file=sys.stderr, flush=True)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and suite is not None and suite.shard_left_empty:
        # A part of a fleet's run with nothing to do: the other parts have it all. Said, not a failure, and its
        # reports written (empty), so that the fleet's merge finds every shard.
        session.config.get_terminal_writer().line(f"shard {suite.shard}: none of this selection's checks falls to "
                                                  "this shard (more shards than environments and check groups)", yellow=True)
        results.write_empty(session.config)
        session.exitstatus = pytest.ExitCode.OK
        return
    # A checklist that selected nothing proves nothing: say so with a failing exit, not pytest's quiet 5.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and runs_checks(session.config):
        session.config.get_terminal_writer().line("ERROR no check selected: nothing was verified", red=True)
    if suite is not None and not hasattr(session.config, "workerinput"):
        memory.judge_exit(session, outcomes.collector.so_far())
    game_day.write_report(session)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    close_ssh_connections()
    suite = config.stash.get(SUITE_KEY, None)
    for target in suite.targets.values() if suite else ():
        target.clients.close()
    for handle in suite.sandboxes if suite else ():
        handle.release()
    if suite and suite.handoff is not None and not hasattr(config, "workerinput"):
        shutil.rmtree(suite.handoff.parent, ignore_errors=True)
    session = config.stash.get(SESSION_KEY, None)
    # Only a run that ended as runs end: a usage error, an interruption or an internal error is still on its way
    # up to pytest, which prints it after this hook. An xdist worker has sent all it had to say when its session
    # finished ("workerfinished"); the controller waits for its process to end before it can end itself.
    # Nor one that an exception is still leaving: its exit status was never set (it would end as 0).
    if (session is not None and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
            and runs_checks(config) and sys.exc_info()[1] is None):
        _exit_now(int(session.exitstatus))


def _exit_now(status: int) -> None:
    """The last step of a run of checks, after every plugin has finished (this hook runs last): what remains is the
    interpreter freeing every object one by one, a quarter of a small run's time (0.2 to 0.4 s), paid again by
    each observation of a chaos experiment. Exit-time handlers still run and output is flushed; only that is skipped."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
