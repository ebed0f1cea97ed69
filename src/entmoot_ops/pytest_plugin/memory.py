"""The on-call's memory in a run (entmoot_ops.history): silences applied to the verdicts, what changed since the last
run and which checks flap, gauges forecast, charts of the last runs, the run remembered, and ``--fail-on``.

Each process of a run (xdist's workers too) reads what it needs once per environment, on a thread of its own as soon
as the references are resolved: the states of the last run and the gauges' recent readings. Only the process that
reports the run (the controller) writes it, in one transaction per environment when the run ends. A store that cannot
be read or written costs one warning line, never a verdict.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import pytest

from entmoot_ops import charts
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
        self.began = time.time()
        self._reading: dict[str, Future[Recalled]] = {}
        self._lock = threading.Lock()
        self.warnings: list[str] = []

    def recall(self, env: str) -> Future[Recalled]:
        """Start reading an environment's memory (once), on a thread of its own."""
        with self._lock:
            if env not in self._reading:
                found: Future[Recalled] = Future()
                self._reading[env] = found
                threading.Thread(target=self._read, args=(env, found), name=f"entmoot-history-{env}", daemon=True).start()
            return self._reading[env]

    def of(self, env: str) -> Recalled:
        environment = self.suite.environments.get(env)
        if not self.enabled or environment is None or not environment.history.enabled:
            return Recalled()
        try:
            return self.recall(env).result(timeout=WAIT_SECONDS)
        except TimeoutError:
            return Recalled(problem=f"history [{env}]: not read within {WAIT_SECONDS:g} s; this run says nothing of changes")

    def _read(self, env: str, found: Future[Recalled]) -> None:
        environment = self.suite.environments[env]
        settings = environment.history
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
    for name, environment in memory.suite.environments.items() if memory.enabled else ():
        if environment.history.enabled:
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


def silence(report: pytest.TestReport, item: pytest.Item, found: silences.Silence, detail: str) -> None:
    """A silenced failure: reported as skipped (it fails neither the run nor its exit code), with its verdict, reason,
    author and end as the skip's reason, as junit and the terminal show a skip."""
    report.outcome = "skipped"
    report.longrepr = (str(item.path), (item.location[1] or 0) + 1, f"SILENCED {detail}; {found.said()}")


def recollect(config: pytest.Config, item: pytest.Item, result: CheckResult) -> dict[str, Any]:
    """What the memory adds to a check's result: its change since the last run, flapping, since when a problem lasts,
    the silence that hid it, and a gauge's forecast (as CheckResult fields)."""
    memory = memory_of(config)
    environment = memory.suite.environments.get(result.env)
    if environment is None:
        return {}
    added: dict[str, Any] = {}
    found = item.stash.get(SILENCE_KEY, None)
    if found is not None and result.outcome == Outcome.SILENCED:
        added["silence"] = {"id": found.id, "reason": found.reason, "by": found.by, "ends": found.ends.isoformat(),
                            "said": found.said()}
    recalled = memory.of(result.env)
    if recalled.store is None:
        return added
    settings = environment.history
    key = (result.check_id, result.resource)
    previous = recalled.states.get(key)
    current = changes.advance(previous, result.outcome, memory.began, high=settings.flap_high_percent, low=settings.flap_low_percent)
    added["change"] = changes.change(previous, current).value
    added["flapping"] = bool(current and current.flapping)
    if current is not None and current.problem:
        added["since"] = datetime.fromtimestamp(current.since, UTC).isoformat(timespec="seconds")
        added["runs"] = current.streak
    if result.outcome == Outcome.PASS:
        found_forecast = _forecast(environment, result, recalled.gauges.get(key, []), memory.began)
        if found_forecast is not None:
            added["forecast"] = found_forecast.as_dict()
            added["warning"] = f"WARN {found_forecast.line(result.check_id)}"
    return added


def _forecast(environment: Environment, result: CheckResult, past: list[Remembered], now: float) -> forecast.Forecast | None:
    settings = environment.history
    for reading in result.values:
        if not reading.get("gauge") or reading.get("value") is None or reading.get("limit") is None:
            continue
        points = [(r.at, v["value"]) for r in past for v in r.readings if v.get("gauge") == reading["gauge"] and v.get("value") is not None]
        found = forecast.crossing(reading["gauge"], [*points, (now, reading["value"])], limit=reading["limit"], op=reading["op"],
                                  unit=reading["unit"], horizon_days=settings.horizon_days, window_days=settings.trend_days,
                                  min_runs=settings.trend_min_runs)
        if found is not None:
            return found
    return None


def chart(config: pytest.Config, result: CheckResult, charts_wanted: str) -> bytes | None:
    """The check's readings over its last runs (the trend window), with their threshold: for a gauge, for a check that
    did not pass (``--charts all``: every check with a number to draw; ``--charts none``: none)."""
    memory = memory_of(config)
    environment = memory.suite.environments.get(result.env)
    numbers = [v for v in result.values if v.get("value") is not None]
    gauge = any(v.get("gauge") for v in numbers)
    wanted = charts_wanted == "all" or (charts_wanted == "failures" and (gauge or result.outcome != Outcome.PASS))
    if environment is None or not numbers or not wanted:
        return None
    recalled = memory.of(result.env)
    if recalled.store is None:
        return None
    key = (result.check_id, result.resource)
    since = memory.began - environment.history.trend_days * DAY
    try:
        past = recalled.gauges.get(key) if gauge else recalled.store.results(result.env, result.check_id, since, result.resource)
    except HistoryUnavailable:
        return None
    first = next((v for v in numbers if v.get("gauge")), numbers[0])
    same = (lambda v: v.get("gauge") == first["gauge"]) if first.get("gauge") else (lambda v: v.get("label") == first["label"])
    points = [(datetime.fromtimestamp(r.at, UTC), v["value"]) for r in past or [] for v in r.readings
              if same(v) and v.get("value") is not None]
    if not points:
        return None
    points.append((datetime.fromtimestamp(memory.began, UTC), first["value"]))
    name = first.get("gauge") or first["label"]
    title = f"{result.check_id}: {name} over the last {environment.history.trend_days:g} days [{result.env}]"
    return charts.history_svg(charts.Chart(title, first.get("unit", ""), [charts.Line(name, points)], first.get("limit")))


def remember(config: pytest.Config, results: list[CheckResult]) -> list[str]:
    """The run written, one transaction per environment; what could not be read or written, one line each."""
    memory = memory_of(config)
    lines = list(dict.fromkeys(memory.of(env).problem for env in {r.env for r in results} if memory.of(env).problem))
    if not memory.enabled:
        return lines
    version = _version()
    selection = config.option.markexpr or "all"
    for env in sorted({r.env for r in results}):
        recalled = memory.of(env)
        if recalled.store is None:
            continue
        mine = [r for r in results if r.env == env]
        try:
            recalled.store.record(Run(uuid.uuid4().hex, env, memory.began, version, selection), [_remembered(r) for r in mine])
        except HistoryUnavailable as exc:
            lines.append(f"history [{env}]: this run was not remembered: {exc.with_fix()}")
    memory.close()
    return lines


def _remembered(result: CheckResult) -> Remembered:
    return Remembered(result.check_id, result.resource, result.outcome, result.values, result.message, result.change,
                      result.flapping, result.remediation, result.remediation_state, result.duration_seconds,
                      result.silence.get("id"))


def silence_lines(config: pytest.Config) -> list[str]:
    """The run's word on its environments' silences: those that end within a day, and those gone stale."""
    suite = config.stash[SUITE_KEY]
    memory = memory_of(config)
    now = datetime.now(UTC)
    lines = []
    for env, found in suite.silences.items():
        settings = suite.environments[env].silences
        for s in silences.active(found, now):
            hours = (s.ends - now).total_seconds() / 3600
            if hours <= settings.ending_hours:
                lines.append(f"silence {s.id} of {s.check} [{env}] ends in {hours:.0f} h ({silences.when(s.ends)}): {s.reason}")
        recalled = memory.of(env)
        if recalled.store is not None:
            for s in silences.stale(found, recalled.last_matched, now, settings):
                lines.append(f"silence {s.id} of {s.check} [{env}] is stale: it has hidden nothing for "
                             f"{settings.stale_days:g} days: `entmoot-ops silence expire {s.id} --env {env}`")
    return lines


def judge_exit(session: pytest.Session, results: list[CheckResult]) -> None:
    """``--fail-on new``: only a failure new since the last run fails the exit code; ``--fail-on warn``: a WARN
    (a gauge about to cross its threshold) fails it too."""
    fail_on = session.config.getoption("entmoot_fail_on")
    if fail_on == "new" and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
        memory = memory_of(session.config)
        problems = [r for r in results if r.outcome in (Outcome.FAIL, Outcome.ERROR, Outcome.FIXED)]
        # Where the memory could not be read, nothing is known to be old: every problem counts as new.
        if problems and not any(r.change == changes.Change.NEW or memory.of(r.env).store is None for r in problems):
            session.exitstatus = pytest.ExitCode.OK
    elif fail_on == "warn" and session.exitstatus == pytest.ExitCode.OK and any(r.warning for r in results):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _version() -> str:
    try:
        return metadata.version("entmoot-ops")
    except metadata.PackageNotFoundError:
        return "unknown"
