"""What an experiment observes, read-only: the suite's own checks, run as a user runs them (pytest over
``checks/``, in a process of its own, forked with the imports done: entmoot_ops.forkrun), so that a check is judged
exactly as in a checklist, and safeguard probes."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from datetime import datetime, UTC
from pathlib import Path

from entmoot_ops import forkrun
from entmoot_ops.results import ORDER, CheckResult, Outcome, read_junit
from entmoot_ops.clients import Clients
from entmoot_ops.errors import OpsError
from entmoot_ops.probes import alb, cloudwatch

HOLDING = (Outcome.PASS, Outcome.FIXED, Outcome.SKIP)  # a skipped check was not judged: it does not break a steady state


class Interrupted(Exception):
    """An observation cut short: the experiment was aborted meanwhile."""


@dataclass(frozen=True)
class Observation:
    started: float  # epoch seconds
    ended: float
    outcomes: dict[str, str]  # check id -> its worst outcome (a per-resource check runs once per resource)
    messages: dict[str, str]  # check id -> the message of that worst outcome
    depends: dict[str, frozenset[str]] = field(default_factory=dict)  # check id -> what it declares it depends on

    def depending_on(self, dependencies: Iterable[str]) -> set[str]:
        """The checks that declare a dependency on any of these: a fault that breaks one may turn them red."""
        wanted = set(dependencies)
        return {c for c, d in self.depends.items() if d & wanted}

    def failing(self, check_ids: Iterable[str] | None = None) -> set[str]:
        wanted = set(self.outcomes if check_ids is None else check_ids)
        return {c for c, o in self.outcomes.items() if c in wanted and o not in HOLDING}

    def holds(self) -> bool:
        return not self.failing()

    def describe(self) -> str:
        """The checks that did not hold, with their verdicts."""
        return "; ".join(f"{c} {self.outcomes[c].upper()}: {self.messages[c]}" for c in sorted(self.failing()))

    def as_json(self) -> dict:
        return {"at": datetime.fromtimestamp(self.ended, UTC).isoformat(), "seconds": round(self.ended - self.started, 2),
                "outcomes": self.outcomes, "failing": {c: self.messages[c] for c in sorted(self.failing())}}


@dataclass(frozen=True)
class CheckRunner:
    """Runs a selection of ``checks/`` against one environment and reads the verdicts from its junit XML."""

    checks_dir: Path
    env: str
    environments_dir: Path | None = None
    environ: dict[str, str] | None = None  # ENTMOOT_SANDBOX_STATE, for one: the sandbox the experiment uses
    timeout: float = 180

    def run(self, *, markers: str, stop: threading.Event | None = None) -> Observation:
        with tempfile.TemporaryDirectory(prefix="entmoot-observe-") as scratch:
            # --no-export, --no-history: a fault's red checks are what the experiment measures, not incidents, the
            # dashboards' state nor the on-call's memory; each observation would tell them from a state file of its
            # own, and no later one would resolve them.
            args = [str(self.checks_dir), "--env", self.env, "--reports-dir", scratch, "-q", "-p", "no:cacheprovider",
                    "-p", "no:xdist", "--no-export", "--no-history", "-m", markers]
            if self.environments_dir is not None:
                args += ["--environments-dir", str(self.environments_dir)]
            started = time.time()
            # Output to a file, not a pipe: nobody reads a pipe while the checks run, and a full one would stall them.
            log = Path(scratch) / "output.txt"
            process = forkrun.start(args, env={**os.environ, **(self.environ or {})}, cwd=self.checks_dir.parent, output=log)
            self._wait(process, stop)
            junit = Path(scratch) / "junit.xml"
            if not junit.exists():
                tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                raise OpsError(f"the checks could not run (exit {process.exitcode}): {tail}")
            results = read_junit(junit)
        worst: dict[str, CheckResult] = {}
        for result in results:
            known = worst.get(result.check_id)
            if known is None or ORDER[result.outcome] < ORDER[known.outcome]:
                worst[result.check_id] = result
        return Observation(started, time.time(), {c: r.outcome for c, r in worst.items()},
                           {c: r.message for c, r in worst.items()}, {c: frozenset(r.depends) for c, r in worst.items()})

    def _wait(self, process: BaseProcess, stop: threading.Event | None) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while process.exitcode is None:
                if stop is not None and stop.is_set():
                    raise Interrupted("aborted while the checks ran")
                if time.monotonic() > deadline:
                    raise OpsError(f"the checks did not end within {self.timeout:.0f} s")
                time.sleep(0.05)
        except BaseException:  # an abort, the time limit, Ctrl-C: no observation is left running
            process.kill()
            process.join()
            raise


@dataclass(frozen=True)
class SafeguardReading:
    name: str
    value: float | None
    bound: float
    breached: bool

    def describe(self) -> str:
        shown = "no data" if self.value is None else f"{self.value:.2%}"
        return f"{self.name} {shown} (abort above {self.bound:.2%})"


def api_error_rate(clients: Clients, since: datetime) -> SafeguardReading:
    """The API's 5XX ratio at the load balancer since the experiment started."""
    bound = clients.env.chaos.abort_error_rate
    stats = alb.request_stats(clients, cloudwatch.Window.since(since, clients.env.thresholds.metric_period_seconds))
    rate = stats.error_rate
    return SafeguardReading("API 5XX ratio", rate, bound, rate is not None and rate > bound)


SAFEGUARDS = {"api-error-rate": api_error_rate}
