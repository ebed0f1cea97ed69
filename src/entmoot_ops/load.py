"""A load run: locust as a subprocess against the environment's API, bounded, stoppable, read back from locust's
own files.

locust patches the standard library with gevent when it is imported, and runs slowly inside pytest: it is never
imported here, only started (``python -m locust``), and its CSV, JSON and HTML files are read after it ends.
A load run is an action: the sandbox is always allowed, any other environment only with ``load.allowed = true``,
and production only with ``--yes``. It stops by itself at its duration, at a breach of the thresholds, or at a
hard limit; Ctrl-C stops locust and every process it forked.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from entmoot_ops import progress
from entmoot_ops.clients import Clients
from entmoot_ops.config import Environment
from entmoot_ops.errors import ConfigError, OpsError

LOCUSTFILE = Path(__file__).resolve().parents[2] / "load" / "entmoot.py"
GRACE_SECONDS = 30  # beyond the planned duration, before locust is stopped from outside


@dataclass(frozen=True)
class LoadResult:
    shape: str
    users: int
    planned_seconds: float
    started: float  # epoch seconds
    ended: float
    requests: int
    failures: int
    p95_ms: float | None  # None: no request completed
    stopped_early: str | None  # the breach that stopped it, or the hard limit
    exit_code: int
    workers: int  # locust worker processes that reported to a master; 0 when one process generated the load
    files: tuple[Path, ...]  # locust's HTML report and CSVs
    endpoints: tuple[dict, ...]  # locust's own per-request-name rows
    errors: tuple[dict, ...] = ()  # locust's failures CSV: what failed, most frequent first

    def describe_errors(self, limit: int = 3) -> str:
        return "; ".join(f"{e['method']} {e['name']}: {e['error']} x{e['occurrences']}" for e in self.errors[:limit]) or "none"

    @property
    def failure_ratio(self) -> float | None:
        return self.failures / self.requests if self.requests else None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def refuse_unless_allowed(env: Environment, *, confirmed: bool) -> None:
    if env.kind != "sandbox" and not env.load.allowed:
        raise ConfigError(f"load.allowed is not true for {env.name}: a load run against it is refused",
                          fix=f"set [load] allowed = true in {env.name}.toml, with users, spawn_rate and duration_seconds")
    if env.production and not confirmed:
        raise ConfigError(f"{env.name} is production: a load run needs --yes", fix="add --yes to confirm")


def plan(env: Environment, shape: str | None = None) -> dict:
    settings, thresholds = env.load, env.thresholds
    return {"shape": shape or settings.shape, "users": settings.users, "spawn_rate": settings.spawn_rate,
            "duration_seconds": settings.duration_seconds, "weights": dict(settings.weights), "paths": dict(settings.paths),
            "project_ids": list(settings.project_ids), "think_seconds": list(settings.think_seconds),
            "stop_on_breach": settings.stop_on_breach, "p95_max_ms": thresholds.latency_p95_max_ms,
            "failure_ratio_max": thresholds.error_rate_max}


def run(env: Environment, clients: Clients, directory: Path, *, shape: str | None = None, confirmed: bool = False) -> LoadResult:
    refuse_unless_allowed(env, confirmed=confirmed)
    if importlib.util.find_spec("locust") is None:
        raise ConfigError("locust is not installed in this environment", fix="pip install -e '.[load]'")
    the_plan = plan(env, shape)
    directory.mkdir(parents=True, exist_ok=True)
    prefix, verdict = directory / "locust", directory / "verdict.json"
    verdict.unlink(missing_ok=True)
    environment = {**os.environ, "ENTMOOT_LOAD_PLAN": json.dumps(the_plan), "ENTMOOT_LOAD_VERDICT": str(verdict)}
    auth = env.api.auth
    if auth.scheme != "none" and auth.secret:
        token = clients.secret(auth.secret, what="api.auth.secret")
        environment |= {"ENTMOOT_LOAD_AUTH_HEADER": auth.header,
                        "ENTMOOT_LOAD_AUTH_VALUE": f"Bearer {token}" if auth.scheme == "bearer" else token}
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", clients.api_url,
            "--csv", str(prefix), "--csv-full-history", "--html", str(prefix) + ".html", "--json-file", str(prefix), "--only-summary",
            "--loglevel", "WARNING", "--stop-timeout", "2"]
    if env.load.processes > 1:
        argv += ["--processes", str(env.load.processes)]
    limit = the_plan["duration_seconds"] + GRACE_SECONDS
    log = (directory / "locust.log").open("w")
    # Its own process group: Ctrl-C or the hard limit stops locust and every worker it forked.
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment,
                               start_new_session=True)
    started, hard_stop = time.time(), None
    tick = progress.Progress(f"load ({the_plan['shape']}, up to {the_plan['users']} users, {the_plan['duration_seconds']:g} s)")
    try:
        while process.poll() is None:
            if time.time() - started > limit:
                hard_stop = f"hard time limit {limit:g} s"
                _stop(process)
                break
            tick("running")
            time.sleep(0.2)
    except BaseException:
        _stop(process)
        raise
    finally:
        log.close()
    return _read(the_plan, prefix, verdict, process.returncode, started, hard_stop, directory)


def _stop(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGINT, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _read(the_plan: dict, prefix: Path, verdict: Path, exit_code: int, started: float, hard_stop: str | None,
          directory: Path) -> LoadResult:
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        tail = (directory / "locust.log").read_text(errors="replace").strip().splitlines()[-3:]
        raise OpsError(f"locust ended ({exit_code}) without stats: {' | '.join(tail) or 'no output'}",
                       fix="read the log beside the report; is the API URL reachable from here?")
    with stats.open() as handle:
        rows = list(csv.DictReader(handle))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    judged = json.loads(verdict.read_text()) if verdict.exists() else {}
    endpoints = tuple({"name": r["Name"], "method": r["Type"], "requests": int(r["Request Count"]), "failures": int(r["Failure Count"]),
                       "p95_ms": _number(r["95%"]), "rps": _number(r["Requests/s"])} for r in rows if r["Name"] != "Aggregated")
    failures = Path(f"{prefix}_failures.csv")
    files = tuple(p for p in (Path(f"{prefix}.html"), stats, failures, Path(f"{prefix}_stats_history.csv")) if p.exists())
    errors = _errors(failures) if failures.exists() else ()
    return LoadResult(shape=the_plan["shape"], users=the_plan["users"], planned_seconds=the_plan["duration_seconds"],
                      started=judged.get("started", started), ended=judged.get("ended", time.time()),
                      requests=int(total["Request Count"]), failures=int(total["Failure Count"]), p95_ms=_number(total["95%"]),
                      stopped_early=hard_stop or judged.get("stopped_early"), exit_code=exit_code,
                      workers=judged.get("workers", 0), files=files, endpoints=endpoints, errors=errors)


def _errors(path: Path) -> tuple[dict, ...]:
    with path.open() as handle:
        rows = [{"method": r["Method"], "name": r["Name"], "error": r["Error"], "occurrences": int(r["Occurrences"])}
                for r in csv.DictReader(handle)]
    return tuple(sorted(rows, key=lambda r: -r["occurrences"]))


def _number(text: str) -> float | None:
    """locust writes N/A where nothing was measured."""
    try:
        return float(text)
    except ValueError:
        return None
