"""Checks measured ahead of their turn: a run pays the network's depth, not its number of calls.

pytest runs one test after another, and each check waits for its own round trips. The checks are independent
reads, so the plugin starts the measurement of every check this process will run, each on a thread of its
environment's pool ([concurrency] reads), as soon as it knows of it: a run's checks when it starts, or, on an
xdist worker, the checks queued for it. pytest then reports each check in its turn, waiting only for a measurement
not finished yet; its verdict, evidence, remediation and report are the same as measured in turn.

Measured ahead: a check whose fixtures can be given off pytest's thread (fixtures.WITHOUT_PYTEST). A load run, a
chaos experiment and a game day act on the environment, and a check marked ``settles`` waits for it to settle (the
deploy gate's rollout): each runs in its turn, and no check after it is measured before it is done. Each
environment has its own threads: a slow dependency of one holds none of another's verdicts.

With --remediate, what was measured ahead before a remediation acted is not reported: the checks after it are
measured ahead again, and one whose measurement still began before the latest action is measured again in its turn.
"""

from __future__ import annotations

import contextvars
import os
import time
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import pytest
from _pytest import runner

from entmoot_ops.breaker import fresh
from entmoot_ops.check import CheckRun, current_run
from entmoot_ops.pytest_plugin.checkrun import RUN_KEY
from entmoot_ops.pytest_plugin.fixtures import GIVEN_OFF_PYTEST, WITHOUT_PYTEST, arguments, parameters, target_of
from entmoot_ops.pytest_plugin.options import runs_checks
from entmoot_ops.pytest_plugin.state import DURATION_KEY, SUITE_KEY, env_name, spec_of

# Markers that keep a test to its turn: a skip decided by pytest, an action, a wait for the environment to settle.
_IN_TURN = ("skip", "skipif", "xfail", "usefixtures", "load", "chaos", "settles")
_BARRIERS = ("load", "chaos", "settles")  # what comes after one of these is measured after it


@dataclass
class Measured:
    run: CheckRun
    raised: BaseException | None
    seconds: float
    acted: int  # the remediations that had acted in this run when the measurement began (Suite.acted)


class Threads:
    """An environment's measuring threads. All of a batch's threads are started before its first measurement: a
    thread started while others measure waits milliseconds for the interpreter's lock just to say it has started,
    which two hundred checks would pay one after another (what ThreadPoolExecutor, starting one per task, does)."""

    def __init__(self, name: str, most: int):
        self.name, self.most = name, most
        self._work: queue.SimpleQueue[tuple[Future, Callable[[], Measured]] | None] = queue.SimpleQueue()
        self.count = 0  # started so far, up to most

    def grow(self, wanted: int) -> None:
        for _ in range(min(wanted, self.most) - self.count):
            self.count += 1
            threading.Thread(target=self._serve, name=f"entmoot-{self.name}-{self.count}", daemon=True).start()

    def submit(self, measure: Callable[[], Measured]) -> Future[Measured]:
        future: Future[Measured] = Future()
        self._work.put((future, measure))
        return future

    def _serve(self) -> None:
        while (task := self._work.get()) is not None:
            future, measure = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(measure())
            except BaseException as exc:  # noqa: BLE001 - its turn raises it; this thread serves the next check
                future.set_exception(exc)

    def close(self) -> None:
        for _ in range(self.count):
            self._work.put(None)


class Ahead:
    """The measurements started ahead in this process, by node id, and each environment's threads."""

    def __init__(self) -> None:
        self.futures: dict[str, Future[Measured]] = {}
        self.threads: dict[str, Threads] = {}
        self.barrier = False  # an action is queued: nothing after it is measured ahead
        self.settled = False  # every test this process will run until the next action is known and started
        self.acted = 0  # Suite.acted when the measurements in flight were started

    def start(self, items: list[pytest.Item]) -> None:
        batch: dict[str, list[pytest.Function]] = {}
        for item in items:
            if self.barrier:
                break
            if item.nodeid in self.futures:
                continue
            if _measurable_ahead(item):
                batch.setdefault(env_name(item), []).append(item)
            else:
                self.barrier = _acts(item)
        targets = {}
        for name, measured in batch.items():
            try:
                targets[name] = target_of(measured[0].config, name)
            except Exception:  # noqa: BLE001 - measured in turn instead, where the env fixture says what is wrong
                continue
            threads = self.threads.setdefault(name, Threads(name, targets[name].config.concurrency.reads))
            threads.grow(threads.count + len(measured))
        for name, target in targets.items():
            for item in batch[name]:
                # In a copy of pytest's context: its own current check, its own fresh() and collectors.
                self.futures[item.nodeid] = self.threads[name].submit(functools.partial(contextvars.copy_context().run,
                                                                                        _measure, item, target))

    def take(self, item: pytest.Item) -> Future[Measured] | None:
        return self.futures.pop(item.nodeid, None)

    def forget(self) -> None:
        """A remediation acted: what was measured before it is not reported; it is measured again, ahead as before."""
        for future in self.futures.values():
            future.cancel()  # one not started yet is not started; one in flight is left to end, unread
        self.futures.clear()
        self.settled = False

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()
        for threads in self.threads.values():
            threads.close()


AHEAD_KEY = pytest.StashKey[Ahead]()
CURRENT_TEST = "PYTEST_CURRENT_TEST"


def _keep_current_test_variable() -> None:
    """pytest deletes PYTEST_CURRENT_TEST after each test. A check measuring meanwhile that lists the environment and
    then reads it (urllib's proxy lookup, which requests and botocore make) met the variable gone between the two
    (KeyError: 'PYTEST_CURRENT_TEST'). While checks measure ahead, it is emptied instead, and deleted when they stop."""
    update = runner._update_current_test_var

    def keeping(item: pytest.Item, when: str | None) -> None:
        if when is None:
            os.environ[CURRENT_TEST] = ""
        else:
            update(item, when)

    if getattr(update, "__name__", "") != "keeping":
        runner._update_current_test_var = keeping


def _measurable_ahead(item: pytest.Item) -> bool:
    return (isinstance(item, pytest.Function) and spec_of(item) is not None and hasattr(item, "callspec")
            and not any(item.get_closest_marker(name) for name in _IN_TURN) and set(item.fixturenames) <= WITHOUT_PYTEST
            and set(parameters(item.obj)) <= GIVEN_OFF_PYTEST)


def _acts(item: pytest.Item) -> bool:
    """A test that changes the environment or waits for it to settle: what is measured after it waits for it."""
    return any(item.get_closest_marker(name) for name in _BARRIERS) or spec_of(item) is None


def _measure(item: pytest.Function, target) -> Measured:  # noqa: ANN001 - the Target of the item's environment
    acted = item.config.stash[SUITE_KEY].acted
    run = CheckRun(spec=spec_of(item), env=target.name)
    current_run.set(run)
    started = time.monotonic()
    try:
        item.obj(**arguments(item, target))
    except BaseException as exc:  # noqa: BLE001 - every outcome, skip and failure included, is reported in turn
        return Measured(run, exc, time.monotonic() - started, acted)
    return Measured(run, None, time.monotonic() - started, acted)


def _upcoming(item: pytest.Item, nextitem: pytest.Item | None) -> list[pytest.Item]:
    """The tests this process will run from this one on: the session's, or those xdist gave this worker (the next
    one, which xdist has taken off its queue already, and those still queued)."""
    session = item.session
    queue = next((plugin.torun for plugin in item.config.pluginmanager.get_plugins()
                  if type(plugin).__name__ == "WorkerInteractor" and hasattr(plugin, "torun")), None)
    if queue is None:
        return session.items[session.items.index(item):] if not hasattr(item.config, "workerinput") else [item]
    with queue.lock() as queued:  # xdist's queue is there to be inspected under its lock (its work stealing does)
        return [item, *([nextitem] if nextitem else []), *(session.items[i] for i in queued if isinstance(i, int))]


def measure_ahead(item: pytest.Item, nextitem: pytest.Item | None = None) -> None:
    """At each test's turn: start measuring every check this process will run that is not started yet."""
    config = item.config
    suite = config.stash.get(SUITE_KEY, None)
    if suite is None or suite.refused or not runs_checks(config):
        return
    if AHEAD_KEY not in config.stash:
        _keep_current_test_variable()
    ahead = config.stash.setdefault(AHEAD_KEY, Ahead())
    if _acts(item):  # the action runs now: what comes after it may be measured ahead once it is done
        ahead.barrier = ahead.settled = False
        return
    if ahead.acted != suite.acted:
        ahead.forget()
        ahead.acted = suite.acted
    if not ahead.settled:
        ahead.start(_upcoming(item, nextitem))
        # Without xdist the session's list is the whole plan; a worker's queue grows as xdist sends more.
        ahead.settled = not hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    ahead = pyfuncitem.config.stash.get(AHEAD_KEY, None)
    future = ahead.take(pyfuncitem) if ahead is not None else None
    if future is None:
        return None
    waiting = time.monotonic()
    measured = future.result()
    # Its report's duration is the check's own: the time it measured, not the time its turn waited for it.
    pyfuncitem.stash[DURATION_KEY] = measured.seconds - (time.monotonic() - waiting)
    if measured.acted != pyfuncitem.config.stash[SUITE_KEY].acted:
        with fresh():  # a remediation acted since it began: what it read may have changed
            pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in parameters(pyfuncitem.obj)})
        return True
    pyfuncitem.stash[RUN_KEY].absorb(measured.run)
    if measured.raised is not None:
        raise measured.raised
    return True


def stop_measuring(session: pytest.Session) -> None:
    """The run ends (or stops at a first failure): what was not started ahead is not started."""
    ahead = session.config.stash.get(AHEAD_KEY, None)
    if ahead is not None:
        ahead.close()
        if os.environ.get(CURRENT_TEST) == "":
            del os.environ[CURRENT_TEST]
