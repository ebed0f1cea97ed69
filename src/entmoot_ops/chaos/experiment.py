"""The experiment model and its runner, after chaostoolkit's: a steady-state hypothesis (checks that must
pass), a method (fault actions), an observation (the checks expected to detect the fault must fail or error
within a deadline; the others must stay green; safeguards abort at once), rollbacks that always run, and a
recovery (the steady state again, within a deadline). Every step goes into a JSON journal."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

from entmoot_ops import progress
from entmoot_ops.chaos import observe
from entmoot_ops.chaos.actions import ACTIONS, ActionContext, Rollback
from entmoot_ops.errors import OpsError
from entmoot_ops.secrets import masker


@dataclass(frozen=True)
class Step:
    action: str
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return ACTIONS[self.action].describe(self.params)


@dataclass(frozen=True)
class Deadlines:
    """An experiment's own deadlines, each replacing the environment's ([chaos]) when set."""
    detection_seconds: float | None = None
    recovery_seconds: float | None = None
    time_limit_seconds: float | None = None  # at most the environment's: its limit is a safety bound


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    section: str  # the runbook section whose procedure it exercises
    platform: str  # "sandbox" or "aws": the platform of its actions
    method: tuple[Step, ...]
    # The checks that must fail or error while the fault lasts. Empty: the system is expected to absorb the
    # fault; the experiment then watches for ``hold_seconds`` that the steady state's checks stay green.
    detectors: tuple[str, ...] = ()
    # What the fault breaks (check.DEPENDENCIES): the checks declaring a dependency on it may turn red, and are
    # not false alarms; ``also`` names further checks a second condition of the fault may turn red.
    breaks: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    steady_state: str = "morning"  # the checks (a marker expression) that must hold before, throughout and after
    hold_seconds: float = 10
    safeguards: tuple[str, ...] = ("api-error-rate",)
    remediation: str = "chaos.detection-gap"
    stop_alarms: tuple[str, ...] = ()  # CloudWatch alarms: one entering ALARM stops the experiment at once
    deadlines: Deadlines = Deadlines()
    origin: str | None = None  # the environment whose experiments_dir holds it; None: the project's
    path: str = ""  # its file

    @property
    def touches_primary(self) -> bool:
        return any(ACTIONS[s.action].touches_primary(s.params) for s in self.method)

    def detection_seconds(self, settings: Any) -> float:
        return self.deadlines.detection_seconds or settings.detection_timeout_seconds

    def recovery_seconds(self, settings: Any) -> float:
        return self.deadlines.recovery_seconds or settings.recovery_timeout_seconds

    def time_limit_seconds(self, settings: Any) -> float:
        return min(self.deadlines.time_limit_seconds or settings.time_limit_seconds, settings.time_limit_seconds)


class RollbackFailed(OpsError):
    pass


@contextlib.contextmanager
def _holding_ctrl_c() -> Iterator[None]:
    """Ctrl-C during an action waits until the action has handed over its rollback: interrupted in between, a
    fault would be injected with nothing left to undo it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


@dataclass
class Journal:
    experiment: str
    env: str
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    status: str = "running"  # completed, not-run, aborted, rollback-failed, interrupted, error
    reason: str = ""
    timeline: list[dict] = field(default_factory=list)
    observations: list[dict] = field(default_factory=list)
    detection_seconds: dict[str, float | None] = field(default_factory=dict)
    false_alarms: dict[str, str] = field(default_factory=dict)
    safeguards: list[dict] = field(default_factory=list)
    stop_alarms: list[str] = field(default_factory=list)  # the CloudWatch alarms watched: its own and its FIS templates'
    rollbacks: list[dict] = field(default_factory=list)
    recovery_seconds: float | None = None
    not_recovered: str = ""  # what still failed at the recovery deadline
    left_broken: list[str] = field(default_factory=list)
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def step(self, name: str, **details: Any) -> None:
        self.timeline.append({"at": datetime.now(UTC).isoformat(), "elapsed": round(time.monotonic() - self._t0, 2),
                              "step": name, **details})

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.experiment}-{self.started[:19].replace(':', '')}.json"
        path.write_text(masker.dumps(self.record(), indent=2) + "\n")
        return path


@dataclass
class Runner:
    """Runs experiments against one environment; ``checks`` observes, ``context`` acts."""

    checks: observe.CheckRunner
    context: ActionContext
    journal_dir: Path
    safeguard_probe: Callable[[str, datetime], observe.SafeguardReading] | None = None
    alarm_probe: Callable[[list[str]], dict[str, str]] | None = None  # the state of each named CloudWatch alarm

    def run(self, experiment: Experiment, *, settle: bool = False) -> Journal:
        """``settle``: wait for the steady state (up to the recovery deadline) rather than refuse at once, as a game
        day does after the experiment before."""
        journal = Journal(experiment.name, self.context.env.name)
        ticker = progress.Progress(f"chaos {experiment.name}")
        self.context.stop_alarms[:] = experiment.stop_alarms
        journal.stop_alarms = list(experiment.stop_alarms)
        try:
            steady = self._observe(journal, ticker, "steady state before", experiment.steady_state)
            until = time.monotonic() + (experiment.recovery_seconds(self.context.env.chaos) if settle else 0)
            while not steady.holds() and time.monotonic() < until:
                time.sleep(self.context.env.chaos.poll_seconds)
                steady = self._observe(journal, ticker, "steady state before", experiment.steady_state)
            if not steady.holds():
                journal.status, journal.reason = "not-run", f"steady state did not hold: {steady.describe()}"
                return journal
            # As FIS: an experiment does not start while a stop condition is in ALARM, nor on an alarm that is not there.
            alarms = self._stop_alarms()
            missing = [name for name in self.context.stop_alarms if name not in alarms]
            firing = [name for name, state in alarms.items() if state == "ALARM"]
            if missing or firing:
                journal.status = "not-run"
                journal.reason = (f"stop condition alarm {', '.join(missing)} does not exist" if missing
                                  else f"stop condition alarm {', '.join(firing)} is in ALARM")
                return journal
            self._attempt(experiment, journal, ticker, set(steady.outcomes))
        except KeyboardInterrupt:
            if journal.status != "rollback-failed":
                journal.status, journal.reason = "interrupted", "Ctrl-C: rolled back"
            raise
        except RollbackFailed:
            pass  # the journal says what is left broken; the caller fails loudly on it
        except Exception as exc:  # noqa: BLE001 - any failure of the method ends in rollbacks and the journal
            # The suite's own errors are said as they are (one line, with the fix); anything else with its kind.
            journal.status = "error"
            journal.reason = masker(exc.with_fix() if isinstance(exc, OpsError) else f"{type(exc).__name__}: {exc}")
        finally:
            journal.step("end", status=journal.status)
            self.context.audit.write(env=journal.env, check_id=f"chaos.{experiment.name}", remediation_id="chaos",
                                     event=f"experiment {journal.status}", reason=journal.reason,
                                     journal=str(journal.write(self.journal_dir)))
        return journal

    def _attempt(self, experiment: Experiment, journal: Journal, ticker: progress.Progress, baseline: set[str]) -> None:
        settings = self.context.env.chaos
        rollbacks: list[tuple[Step, Rollback]] = []
        abort = threading.Event()
        guard = threading.Thread(target=self._watch, daemon=True, name=f"safeguards-{experiment.name}",
                                 args=(experiment, journal, abort, time.monotonic() + experiment.time_limit_seconds(settings)))
        try:
            guard.start()
            for step in experiment.method:
                with _holding_ctrl_c():
                    rollback = self._act(journal, step)
                    if rollback is not None:
                        rollbacks.append((step, rollback))
                if abort.is_set():
                    return
            self._detect(experiment, journal, ticker, baseline, time.time(), abort)
        finally:
            abort.set()
            guard.join(10)
            fault_ended = time.monotonic()
            self._roll_back(experiment, journal, rollbacks)
            if journal.status == "rollback-failed":
                raise RollbackFailed(journal.reason)
        self._recover(experiment, journal, ticker, fault_ended)
        if journal.status == "running":
            journal.status = "completed"

    def _act(self, journal: Journal, step: Step) -> Rollback | None:
        ctx = self.context
        journal.step("action", action=step.action, params=step.params, what=step.describe())
        rollback = ACTIONS[step.action].start(ctx, dict(step.params))
        journal.stop_alarms = list(ctx.stop_alarms)
        ctx.audit.write(env=ctx.env.name, check_id=f"chaos.{ctx.experiment}", remediation_id=f"chaos:{step.action}",
                        event="injected", params=step.params, what=step.describe())
        return rollback

    def _detect(self, experiment: Experiment, journal: Journal, ticker: progress.Progress, baseline: set[str],
                injected: float, abort: threading.Event) -> None:
        """Observe until every detector has failed (or the detection deadline, or ``hold_seconds`` for an
        experiment that expects none); any other check of the steady state that fails is a false alarm."""
        settings = self.context.env.chaos
        waiting = set(experiment.detectors)
        journal.detection_seconds = {c: None for c in experiment.detectors}
        until = injected + (experiment.detection_seconds(settings) if waiting else experiment.hold_seconds)
        while not abort.is_set():
            try:
                seen = self._observe(journal, ticker, "observation", experiment.steady_state, stop=abort)
            except observe.Interrupted:
                return
            for check_id in waiting & seen.failing():
                journal.detection_seconds[check_id] = round(seen.ended - injected, 2)
            waiting -= seen.failing()
            tolerated = (set(experiment.detectors) | seen.depending_on(experiment.breaks) | set(experiment.also)
                         | set(journal.false_alarms))
            for check_id in seen.failing(baseline) - tolerated:
                journal.false_alarms[check_id] = f"{seen.outcomes[check_id].upper()}: {seen.messages[check_id]}"
            if (experiment.detectors and not waiting) or time.time() >= until:
                return
            abort.wait(settings.poll_seconds)

    def _watch(self, experiment: Experiment, journal: Journal, abort: threading.Event, deadline: float) -> None:
        """Stop conditions (CloudWatch alarms entering ALARM), safeguards and the hard time limit, throughout the
        method and the observation: each poll reads them all."""
        settings = self.context.env.chaos
        since = datetime.now(UTC)
        while not abort.is_set():
            if time.monotonic() > deadline:
                self._abort(journal, abort, f"time limit of {experiment.time_limit_seconds(settings):g} s reached")
                return
            try:
                firing = sorted(name for name, state in self._stop_alarms().items() if state == "ALARM")
            except Exception as exc:  # noqa: BLE001 - a stop condition that cannot be read is said; the others still hold
                journal.safeguards.append({"stop_alarms": list(self.context.stop_alarms), "error": str(exc)})
                firing = []
            if firing:
                self._abort(journal, abort, f"stop condition: alarm {', '.join(firing)} entered ALARM")
                return
            for name in experiment.safeguards if self.safeguard_probe else ():
                try:
                    reading = self.safeguard_probe(name, since)
                except Exception as exc:  # noqa: BLE001 - a safeguard that cannot measure does not abort by itself
                    journal.safeguards.append({"safeguard": name, "error": str(exc)})
                    continue
                journal.safeguards.append({"safeguard": name, "value": reading.value, "bound": reading.bound,
                                           "breached": reading.breached})
                if reading.breached:
                    self._abort(journal, abort, f"safeguard breached: {reading.describe()}")
                    return
            abort.wait(settings.poll_seconds)

    def _stop_alarms(self) -> dict[str, str]:
        names = list(self.context.stop_alarms)
        return self.alarm_probe(names) if names and self.alarm_probe else {}

    @staticmethod
    def _abort(journal: Journal, abort: threading.Event, reason: str) -> None:
        journal.status, journal.reason = "aborted", reason
        journal.step("abort", reason=reason)
        abort.set()

    def _roll_back(self, experiment: Experiment, journal: Journal, rollbacks: list[tuple[Step, Rollback]]) -> None:
        """Every rollback, newest first, whatever happened; one that fails leaves the others to run."""
        ctx = self.context
        for step, rollback in reversed(rollbacks):
            try:
                rollback()
            except Exception as exc:  # noqa: BLE001 - a failed rollback is reported, never swallowed
                journal.left_broken.append(f"{step.describe()}: rollback failed ({type(exc).__name__}: {exc})")
                journal.rollbacks.append({"action": step.action, "ok": False, "error": str(exc)})
                ctx.audit.write(env=ctx.env.name, check_id=f"chaos.{experiment.name}", remediation_id=f"chaos:{step.action}",
                                event="rollback-failed", error=str(exc))
                continue
            journal.rollbacks.append({"action": step.action, "ok": True})
            journal.step("rollback", action=step.action)
            ctx.audit.write(env=ctx.env.name, check_id=f"chaos.{experiment.name}", remediation_id=f"chaos:{step.action}",
                            event="rolled-back")
        if journal.left_broken:
            journal.status = "rollback-failed"
            journal.reason = "ROLLBACK FAILED, left broken: " + "; ".join(journal.left_broken)

    def _recover(self, experiment: Experiment, journal: Journal, ticker: progress.Progress, started: float) -> None:
        """The steady state must hold again within the recovery deadline, counted from the end of the fault (its
        rollbacks included): that time is the recovery time."""
        settings = self.context.env.chaos
        while True:
            seen = self._observe(journal, ticker, "recovery", experiment.steady_state)
            if seen.holds():
                journal.recovery_seconds = round(time.monotonic() - started, 2)
                journal.step("recovered", seconds=journal.recovery_seconds)
                return
            if time.monotonic() - started > experiment.recovery_seconds(settings):
                journal.step("not recovered", failing=sorted(seen.failing()))
                journal.not_recovered = seen.describe()
                return
            time.sleep(settings.poll_seconds)

    def _observe(self, journal: Journal, ticker: progress.Progress, what: str, markers: str,
                 stop: threading.Event | None = None) -> observe.Observation:
        ticker(what)
        seen = self.checks.run(markers=markers, stop=stop)
        journal.observations.append({"phase": what, **seen.as_json()})
        journal.step(what, failing=sorted(seen.failing()))
        return seen
