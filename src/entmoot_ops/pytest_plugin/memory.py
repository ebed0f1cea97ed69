"""The on-call's memory in a run (entmoot_ops.history): silences applied to the verdicts, what changed since the last
run and which checks flap, gauges forecast, charts of the last runs, the run remembered, and ``--fail-on``.

Each process of a run (xdist's workers too) reads what it needs once per environment, on a thread of its own as soon
as the environment's references are resolved, while its checks measure: the states of the last run, the gauges'
recent readings and when each silence last hid something. Only the process that reports the run (the controller)
writes it, in one transaction per environment, when the run ends, at the time the run began. A store that cannot be
read or written costs one line, never a verdict, an exit code or a notification.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import pytest

from entmoot_ops import charts
from entmoot_ops.check import Unavailable, best_effort
from entmoot_ops.config import Environment
from entmoot_ops.errors import one_line
from entmoot_ops.history import changes, forecast, silences
from entmoot_ops.history.store import DAY, HistoryUnavailable, Remembered, Run, Store, open_store
from entmoot_ops.pytest_plugin.state import SUITE_KEY, Suite, env_name, spec_of
from entmoot_ops.results import CheckResult, Outcome

SILENCE_KEY = pytest.StashKey[silences.Silence | None]()
WAIT_SECONDS = 30.0  # for an environment's memory to be read: past it, the run goes on without (one line)


@dataclass
class Recalled:
    """What a process read of one environment's memory."""

    store: Store | None = None
    states: dict[tuple[str, str], changes.State] = field(default_factory=dict)
    gauges: dict[tuple[str, str], list[Remembered]] = field(default_factory=dict)
    last_matched: dict[str, float] = field(default_factory=dict)
    problem: str = ""  # why it could not be read: said once


class Memory:
    """A run's memory, per environment: read once in each process, written once by the controller."""

    def __init__(self, suite: Suite, *, enabled: bool):
        self.suite = suite
        self.enabled = enabled
        self._reading: dict[str, Future[Recalled]] = {}
        self._lock = threading.Lock()

    @property
    def began(self) -> float:
        return self.suite.started_at

    def wanted(self, env: str) -> bool:
        environment = self.suite.environments.get(env)
        return self.enabled and environment is not None and environment.history.enabled

    def recall(self, env: str) -> Future[Recalled]:
        """Start reading an environment's memory (once), on a thread of its own."""
        with self._lock:
            if env not in self._reading:
                found: Future[Recalled] = Future()
                self._reading[env] = found
                if self.wanted(env):
                    threading.Thread(target=self._read, args=(env, found), name=f"entmoot-history-{env}", daemon=True).start()
                else:
                    found.set_result(Recalled())
            return self._reading[env]

    def of(self, env: str) -> Recalled:
        reading = self.recall(env)
        try:
            return reading.result(timeout=WAIT_SECONDS)
        except TimeoutError:
            late = Recalled(problem=f"history [{env}]: not read within {WAIT_SECONDS:g} s; this run says nothing of changes "
                                    "and is not remembered")
            with self._lock:  # asked once: every later check goes on without it at once
                if self._reading.get(env) is reading:
                    self._reading[env] = done = Future()
                    done.set_result(late)
            return self._reading[env].result()

    def _read(self, env: str, found: Future[Recalled]) -> None:
        settings = self.suite.environments[env].history
        try:
            store = open_store(settings, self.suite.resolver(env))
            found.set_result(Recalled(store, store.states(env), store.gauge_readings(env, self.began - settings.trend_days * DAY),
                                      store.last_matched(env)))
        except HistoryUnavailable as exc:
            found.set_result(Recalled(problem=f"history [{env}]: not read: {exc.with_fix()}"))
        except Exception as exc:  # noqa: BLE001 - the memory never costs a verdict: any failure is one line
            found.set_result(Recalled(problem=f"history [{env}]: not read: {one_line(exc)}"))

    def close(self) -> None:
        for reading in self._reading.values():
            if reading.done() and reading.result().store is not None:
                reading.result().store.close()


def memory_of(config: pytest.Config) -> Memory:
    suite = config.stash[SUITE_KEY]
    if suite.memory is None:
        suite.memory = Memory(suite, enabled=config.getoption("entmoot_history"))
    return suite.memory


def start_recalling(config: pytest.Config) -> None:
    """Once the references are resolved: each environment's memory read while the checks measure."""
    memory = memory_of(config)
    for name in memory.suite.environments:
        memory.recall(name)


def resource_of(item: pytest.Item) -> str:
    """The replica or host a check is parametrised for ("" for a check of the whole environment)."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return ""
    env = env_name(item)
    return callspec.id[len(env) + 1:] if callspec.id.startswith(env + "-") else ("" if callspec.id == env else callspec.id)


def silence_of(item: pytest.Item, outcome: str) -> silences.Silence | None:
    """The silence that hides this failure, if any (decided once per check: its remediation and its verdict agree)."""
    if SILENCE_KEY not in item.stash:
        spec = spec_of(item)
        found = item.config.stash[SUITE_KEY].silences.get(env_name(item), [])
        item.stash[SILENCE_KEY] = silences.matching(found, spec.id, resource_of(item), outcome, datetime.now(UTC)) if spec else None
    return item.stash[SILENCE_KEY]


def mark_silenced(report: pytest.TestReport, item: pytest.Item, silence: silences.Silence, detail: str) -> None:
    """A silenced failure: reported as skipped (it fails neither the run nor its exit code), with its verdict, reason,
    author and end as the skip's reason, as junit and the terminal show a skip."""
    report.outcome = "skipped"
    report.longrepr = (str(item.path), (item.location[1] or 0) + 1, f"SILENCED {detail}; {silence.said()}")


def recollect(config: pytest.Config, item: pytest.Item, result: CheckResult) -> dict[str, Any]:
    """What the memory adds to a check's result (as CheckResult fields): the silence that hid it, its change since the
    last run, flapping, since when a problem lasts, and a gauge's forecast."""
    memory = memory_of(config)
    environment = memory.suite.environments.get(result.env)
    if environment is None:
        return {}
    added: dict[str, Any] = {}
    silence = item.stash.get(SILENCE_KEY, None)
    if silence is not None and result.outcome == Outcome.SILENCED:
        added["silence"] = {"id": silence.id, "reason": silence.reason, "by": silence.by, "ends": silence.ends.isoformat(),
                            "said": silence.said()}
    recalled = memory.of(result.env)
    if recalled.store is None:
        return added
    settings = environment.history
    key = (result.check_id, result.resource)
    previous = recalled.states.get(key)
    current = changes.advance(previous, result.outcome, memory.began, high=settings.flap_high_percent, low=settings.flap_low_percent)
    added.update(recalled=True, change=changes.change(previous, current).value, flapping=bool(current and current.flapping))
    if current is not None and current.problem:
        added["since"] = datetime.fromtimestamp(current.since, UTC).isoformat(timespec="seconds")
        added["runs"] = current.streak
    if result.outcome == Outcome.PASS:
        heading = _forecast(environment, result, recalled.gauges.get(key, []), memory.began)
        if heading is not None:
            added["forecast"] = heading.as_dict()
            added["warning"] = f"WARN {heading.line(result.check_id)}"
    return added


def _forecast(environment: Environment, result: CheckResult, past: list[Remembered], now: float) -> forecast.Forecast | None:
    settings = environment.history
    for reading in result.values:
        if not reading.get("gauge") or reading.get("value") is None or reading.get("limit") is None:
            continue
        points = [(r.at, v["value"]) for r in past for v in r.readings if v.get("gauge") == reading["gauge"] and v.get("value") is not None]
        heading = forecast.crossing(reading["gauge"], [*points, (now, reading["value"])], limit=reading["limit"], op=reading["op"],
                                    unit=reading["unit"], horizon_days=settings.horizon_days, min_runs=settings.trend_min_runs)
        if heading is not None:
            return heading
    return None


def chart(config: pytest.Config, result: CheckResult, charts_wanted: str) -> bytes | None:
    """The check's readings over its last runs (the trend window), with their threshold: for a gauge, for a check that
    did not pass (``--charts all``: every check with a number to draw; ``--charts none``: none). Best effort: a chart
    that cannot be read or drawn is left out."""
    memory = memory_of(config)
    environment = memory.suite.environments.get(result.env)
    numbers = [v for v in result.values if v.get("value") is not None]
    gauge = any(v.get("gauge") for v in numbers)
    wanted = charts_wanted == "all" or (charts_wanted == "failures" and (gauge or result.outcome != Outcome.PASS))
    if environment is None or not numbers or not wanted or memory.of(result.env).store is None:
        return None
    drawn = best_effort("history chart", lambda: _draw(memory, environment, result, numbers))
    return None if isinstance(drawn, Unavailable) else drawn


def _draw(memory: Memory, environment: Environment, result: CheckResult, numbers: list[dict]) -> bytes | None:
    recalled = memory.of(result.env)
    key = (result.check_id, result.resource)
    first = next((v for v in numbers if v.get("gauge")), numbers[0])
    if first.get("gauge"):
        past = recalled.gauges.get(key, [])
        same = lambda v: v.get("gauge") == first["gauge"]  # noqa: E731
    else:
        past = recalled.store.results(result.env, result.check_id, memory.began - environment.history.trend_days * DAY, result.resource)
        same = lambda v: v.get("label") == first["label"]  # noqa: E731
    points = [(datetime.fromtimestamp(r.at, UTC), v["value"]) for r in past for v in r.readings if same(v) and v.get("value") is not None]
    if not points:
        return None
    points.append((datetime.fromtimestamp(memory.began, UTC), first["value"]))
    name = first.get("gauge") or first["label"]
    title = f"{result.check_id}: {name} over the last {environment.history.trend_days:g} days [{result.env}]"
    return charts.history_svg(charts.Chart(title, first.get("unit", ""), [charts.Line(name, points)], first.get("limit")))


def remember(config: pytest.Config, results: list[CheckResult]) -> list[str]:
    """The run written, one transaction per environment; what could not be read or written, one line each."""
    memory = memory_of(config)
    lines = []
    for env in sorted({r.env for r in results}) if memory.enabled else ():
        recalled = memory.of(env)
        if recalled.problem:
            lines.append(recalled.problem)
        if recalled.store is None:
            continue
        mine = [r for r in results if r.env == env]
        unknown = sum(1 for r in mine if not r.recalled)
        if unknown:  # an xdist worker that could not read what this process could
            lines.append(f"history [{env}]: {unknown} of {len(mine)} checks were judged without their history (no change "
                         "said for them, and --fail-on new counts their problems as new)")
        try:
            recalled.store.record(Run(uuid.uuid4().hex, env, memory.began, _version(), config.option.markexpr or "all"),
                                  [_to_remembered(r) for r in mine])
        except HistoryUnavailable as exc:
            lines.append(f"history [{env}]: this run was not remembered: {exc.with_fix()}")
        except Exception as exc:  # noqa: BLE001 - the memory never costs a verdict: any failure is one line
            lines.append(f"history [{env}]: this run was not remembered: {one_line(exc)}")
    memory.close()
    return lines


def _to_remembered(result: CheckResult) -> Remembered:
    return Remembered(result.check_id, result.resource, result.outcome, result.values, result.message, result.change,
                      result.flapping, result.remediation, result.remediation_state, result.duration_seconds,
                      result.silence.get("id"))


def silence_lines(config: pytest.Config, results: list[CheckResult]) -> list[str]:
    """The run's word on its environments' silences: those that end within a day, and those gone stale."""
    suite = config.stash[SUITE_KEY]
    memory = memory_of(config)
    now = datetime.now(UTC)
    lines = []
    for env, kept in suite.silences.items():
        settings = suite.environments[env].silences
        for silence in silences.active(kept, now):
            hours = (silence.ends - now).total_seconds() / 3600
            if hours <= settings.ending_hours:
                lines.append(f"silence {silence.id} of {silence.check} [{env}] ends in {hours:.0f} h ({silences.when(silence.ends)}): "
                             f"{silence.reason}")
        recalled = memory.of(env)
        if recalled.store is not None:
            # What this run's silences hid counts too: the store has it only once the run is written.
            matched = recalled.last_matched | {r.silence["id"]: memory.began for r in results if r.env == env and r.silence}
            for silence in silences.stale(kept, matched, now, settings):
                lines.append(f"silence {silence.id} of {silence.check} [{env}] is stale: it has hidden nothing for "
                             f"{settings.stale_days:g} days: `entmoot-ops silence expire {silence.id} --env {env}`")
    return lines


def judge_exit(session: pytest.Session, results: list[CheckResult]) -> None:
    """``--fail-on new``: only a problem new since the last run fails the exit code; ``--fail-on warn``: a WARN (a
    gauge about to cross its threshold) fails it too."""
    fail_on = session.config.getoption("entmoot_fail_on")
    if fail_on == "new" and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
        problems = [r for r in results if r.outcome in (Outcome.FAIL, Outcome.ERROR, Outcome.FIXED)]
        # Green only when every failure pytest counted is a check's problem known from the last run: one whose
        # history was not read is not known to be old, and a failure that made no result is not known at all.
        known = all(r.recalled and r.change == changes.Change.STILL for r in problems)
        if problems and known and session.testsfailed <= len(problems):
            session.exitstatus = pytest.ExitCode.OK
    elif fail_on == "warn" and session.exitstatus == pytest.ExitCode.OK and any(r.warning for r in results):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _version() -> str:
    try:
        return metadata.version("entmoot-ops")
    except metadata.PackageNotFoundError:
        return "unknown"
