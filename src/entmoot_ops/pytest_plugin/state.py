"""Run state: the Suite a run builds when configured, the stash keys that carry it, and what an item carries."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from entmoot_ops import iam, preflight
from entmoot_ops.chaos.gameday import GameDay
from entmoot_ops.check import CheckSpec
from entmoot_ops.clients import Clients
from entmoot_ops.config import Environment
from entmoot_ops.errors import ConfigError
from entmoot_ops.history.silences import Silence
from entmoot_ops.remediation import AuditLog


@dataclass
class Suite:
    """Run-wide state: the environments selected and their loaded configuration."""

    environments: dict[str, Environment]
    remediate: bool
    mode: iam.Mode  # which least-privilege policy this run needs (entmoot-ops iam-policy MODE)
    confirmed: bool
    reports_dir: Path | None
    audit: AuditLog
    started: bool  # checks are running: results were emptied, the junit file will be written
    preflights: dict[str, preflight.Preflight] = field(default_factory=dict)
    asked: dict = field(default_factory=dict)  # the preflights' AWS answers, shared by environments asking alike
    sandboxes: list[Any] = field(default_factory=list)  # handles this process holds, released at the end
    # Under xdist the controller runs the preflight once the workers' selection is known, after they started: it
    # hands its result over through this file, written before any check is sent to a worker.
    handoff: Path | None = None
    refusal: str | None = None  # a usage error found only once xdist's workers had collected
    refused: bool = False  # the selection was refused: nothing may start, nothing of the last run be emptied
    running: str | None = None  # the check that runs now: the one Ctrl-C stops
    gameday: GameDay | None = None
    ssh_warmups: dict[str, threading.Thread] = field(default_factory=dict)  # by control path
    began: float = field(default_factory=time.monotonic)
    # When the run began, by the clock: the time its results are remembered at (a worker takes the controller's).
    started_at: float = field(default_factory=time.time)
    acted: int = 0  # the remediations that have acted in this run: a check measured before one is measured again
    shard: str | None = None  # "K/N" of --shard
    shard_left_empty: bool = False  # the selection had checks, none of them fell to this shard
    targets: dict[str, Target] = field(default_factory=dict)  # each environment's, for the run (fixtures.target_of)
    silences: dict[str, list[Silence]] = field(default_factory=dict)  # each environment's, read when configured
    memory: Any = None  # the run's memory.Memory, made when first asked

    def resolver(self, env: str) -> Any:
        """``resolve(reference, key)``: a reference of the environment as its preflight resolved it; a problem the
        preflight found is raised."""
        def resolve(reference: str, key: str) -> str:
            found = self.preflights.get(env)
            if found is not None and reference in found.resolved:
                return found.resolved[reference]
            problem = found.problems.get(reference) if found is not None else None
            raise ConfigError(f"{key}: {problem.detail if problem else 'not resolved by the preflight'}",
                              fix=problem.fix if problem else "")
        return resolve


SUITE_KEY = pytest.StashKey[Suite]()
SESSION_KEY = pytest.StashKey[pytest.Session]()
# Added to a check's call duration: measured ahead of its turn (concurrency), less what its turn waited for it.
DURATION_KEY = pytest.StashKey[float]()


def spec_of(item: pytest.Item) -> CheckSpec | None:
    marker = item.get_closest_marker("check")
    return CheckSpec(**marker.kwargs) if marker else None


def check_id(item: pytest.Item) -> str:
    marker = item.get_closest_marker("check")
    return marker.kwargs.get("id", "") if marker else ""


def component(check_id: str) -> str:
    """The first part of a check's id (``redis`` of ``redis.memory``): a marker of its own, so that pytest's -m
    language selects by component as by checklist (``-m "morning and not redis"``)."""
    return check_id.split(".", 1)[0]


def env_name(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("env", "?") if callspec else "?"


@dataclass
class Target:
    """What a check receives as ``env``: the configuration and read-only clients of one environment."""

    config: Environment
    clients: Clients

    def __repr__(self) -> str:  # pytest prints check arguments in failures: keep it to the name
        return f"<environment {self.config.name}>"

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def thresholds(self):  # noqa: ANN201 - the pydantic model
        return self.config.thresholds
