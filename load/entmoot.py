"""Entmoot's traffic as locust users, and the load shapes that drive them.

Run by ``pytest checks/ -m load``, which passes the plan as ``ENTMOOT_LOAD_PLAN`` (JSON) and the credential as
``ENTMOOT_LOAD_AUTH_HEADER`` / ``ENTMOOT_LOAD_AUTH_VALUE`` (environment variables: never on a command line,
which any local user can read). By hand, or for distributed load across machines:

    locust -f load/entmoot.py --headless --host "$API_URL"             # the defaults below
    locust -f load/entmoot.py --master --expect-workers 2 --headless --host "$API_URL"
    locust -f load/entmoot.py --worker --master-host MASTER            # on each load-generating machine

The traffic follows the API's routes: health, project list and get, submitting an optimisation and polling its
job. A breach of the runbook's thresholds (p95, failure ratio) stops the run early; the verdict is written to
``ENTMOOT_LOAD_VERDICT`` when set.
"""

from __future__ import annotations

import json
import math
import os
import random
import time

import gevent
from locust import FastHttpUser, LoadTestShape, between, events
from locust.runners import MasterRunner, WorkerRunner

DEFAULT_PLAN = {
    "shape": "baseline",  # baseline, ramp, spike, soak
    "users": 10,
    "spawn_rate": 5.0,
    "duration_seconds": 30.0,
    "weights": {"health": 1, "projects": 3, "project": 6, "optimize": 1},
    "paths": {"health": "/health", "projects": "/api/projects", "project": "/api/projects/{id}",
              "optimize": "/api/optimize", "job": "/api/jobs/{id}"},
    "project_ids": [1, 50],
    "think_seconds": [0.05, 0.2],
    "stop_on_breach": True,
    "p95_max_ms": 500.0,  # runbook Monitoring and Alerting / Scaling: p95 > 500 ms
    "failure_ratio_max": 0.01,  # runbook: error rate > 1%
    "warmup_requests": 50,  # fewer requests than this judge nothing
}
PLAN = {**DEFAULT_PLAN, **json.loads(os.environ.get("ENTMOOT_LOAD_PLAN") or "{}")}
PATHS = PLAN["paths"]


def _project_id() -> int:
    low, high = PLAN["project_ids"]
    return random.randint(low, high)


def health(user: FastHttpUser) -> None:
    user.client.get(PATHS["health"], name="GET health")


def projects(user: FastHttpUser) -> None:
    user.client.get(PATHS["projects"], name="GET projects")


def project(user: FastHttpUser) -> None:
    user.client.get(PATHS["project"].format(id=_project_id()), name="GET project")


def optimize(user: FastHttpUser) -> None:
    """Submit an optimisation, then poll its job a few times, as the web client does."""
    with user.client.post(PATHS["optimize"], json={"project_id": _project_id()}, name="POST optimize",
                          catch_response=True) as response:
        if response.status_code != 202:
            response.failure(f"HTTP {response.status_code}")
            return
        job = response.json().get("job_id")
    for _ in range(3):
        status = user.client.get(PATHS["job"].format(id=job), name="GET job").json().get("status") if job else None
        if status in ("completed", "failed"):
            return
        gevent.sleep(0.2)


_AUTH = (os.environ.get("ENTMOOT_LOAD_AUTH_HEADER"), os.environ.get("ENTMOOT_LOAD_AUTH_VALUE"))


class EntmootUser(FastHttpUser):
    wait_time = between(*PLAN["think_seconds"])
    tasks = {task: PLAN["weights"].get(task.__name__, 0) for task in (health, projects, project, optimize)
             if PLAN["weights"].get(task.__name__, 0) > 0}
    default_headers = {_AUTH[0]: _AUTH[1]} if all(_AUTH) else None


class EntmootShape(LoadTestShape):
    """Users over time, bounded: nothing runs past ``duration_seconds`` or above ``users``."""

    def tick(self) -> tuple[int, float] | None:
        elapsed, duration = self.get_run_time(), PLAN["duration_seconds"]
        if elapsed >= duration:
            return None
        users, rate = PLAN["users"], PLAN["spawn_rate"]
        if PLAN["shape"] == "ramp":
            return max(1, math.ceil(users * elapsed / duration)), rate
        if PLAN["shape"] == "spike":  # a fifth of the users, all of them for the middle third, a fifth again
            return (users if duration / 3 <= elapsed < 2 * duration / 3 else max(1, users // 5)), rate
        return users, rate  # baseline and soak: steady; a soak is the longer duration


def _breach(environment) -> str | None:
    total = environment.stats.total
    if total.num_requests < PLAN["warmup_requests"]:
        return None
    p95 = total.get_current_response_time_percentile(0.95) or 0
    if p95 > PLAN["p95_max_ms"]:
        return f"p95 of the last 10 s {p95:.0f} ms > {PLAN['p95_max_ms']:g} ms"
    if total.fail_ratio > PLAN["failure_ratio_max"]:
        return f"failure ratio {total.fail_ratio:.2%} > {PLAN['failure_ratio_max']:.2%}"
    return None


def _watch(environment) -> None:
    """Counts the workers that report (a master's), and stops the run at once on a breach: there is no point in
    loading a service that already fails its thresholds (unless the plan says to go on)."""
    while True:
        gevent.sleep(1)
        if isinstance(environment.runner, MasterRunner):
            environment.entmoot_workers = max(environment.entmoot_workers, len(environment.runner.clients))
        reason = _breach(environment) if PLAN["stop_on_breach"] else None
        if reason:
            environment.entmoot_breach = reason
            environment.runner.quit()
            return


@events.init.add_listener
def _start_watch(environment, **_) -> None:
    environment.entmoot_started, environment.entmoot_workers = time.time(), 0
    if not isinstance(environment.runner, WorkerRunner):
        gevent.spawn(_watch, environment)


@events.quitting.add_listener
def _verdict(environment, **_) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    total = environment.stats.total
    breach = getattr(environment, "entmoot_breach", None)
    if breach:
        environment.process_exit_code = 3
    path = os.environ.get("ENTMOOT_LOAD_VERDICT")
    if path:
        with open(path, "w") as handle:
            json.dump({"started": environment.entmoot_started, "ended": time.time(), "stopped_early": breach,
                       "workers": environment.entmoot_workers,
                       "requests": total.num_requests, "failures": total.num_failures,
                       "p95_ms": total.get_response_time_percentile(0.95) or 0, "failure_ratio": total.fail_ratio}, handle)
