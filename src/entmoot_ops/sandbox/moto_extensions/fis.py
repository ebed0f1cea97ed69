"""AWS FIS experiments whose actions run: the sandbox turns each into a fault of its real servers, for its duration,
stopped by StopExperiment or a stop condition's alarm."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.elasticache.models import elasticache_backends
from moto.rds.models import rds_backends
from moto.fis.models import FISBackend

from entmoot_ops.sandbox.moto_extensions import services

_lock = threading.Lock()  # this extension's state is read and changed by moto's request threads



# (action id, parameters) -> the undo of the fault it made (None: nothing lasts); raises ValueError if it cannot run.
on_fis_action: Any = None


FIS_POLL_SECONDS = 0.5  # how often a running experiment's duration and stop conditions are read, as FIS monitors them


def _start_experiment(self: FISBackend, *args: Any, **kwargs: Any) -> Any:
    answer = _original_start_experiment(self, *args, **kwargs)
    experiment = self.experiments[answer["id"]]
    undos: list[Any] = []
    seconds = 0.0
    try:
        for action in experiment.actions.values():
            parameters = action.get("parameters") or {}
            if action.get("actionId") == "aws:ecs:stop-task" and services.service_tasks is not None:
                share = float(parameters.get("percentage", 34)) / 100
                for arn in list(services.service_tasks.arns)[:max(1, int(len(services.service_tasks.arns) * share))]:
                    services.service_tasks.stop(arn)
                continue
            if on_fis_action is None:
                raise ValueError(f"the sandbox's FIS runs no {action.get('actionId')}")
            undo = on_fis_action(action.get("actionId"), parameters, _named_dependencies(self, parameters.get("sources", "")))
            if undo is not None:
                undos.append(undo)
            seconds = max(seconds, iso_seconds(parameters.get("duration", "PT0S")))
    except ValueError as exc:
        _end_experiment(experiment, undos, "failed", str(exc))
        return experiment.to_dict(tags=kwargs.get("tags") or {})
    if seconds > 0:
        _hold(experiment, "running")
        threading.Thread(target=_monitor, args=(self, experiment, undos, time.monotonic() + seconds), daemon=True,
                         name=f"sandbox-fis-{experiment.id}").start()
    return experiment.to_dict(tags=kwargs.get("tags") or {})


def _named_dependencies(backend: FISBackend, sources: str) -> list[str]:
    """What a network action's ``sources`` name, as the sandbox's servers: an RDS instance's endpoint is its
    primary, an ElastiCache replication group's endpoints its Redis."""
    account, region = backend.account_id, backend.region_name
    databases = {db.address for db in rds_backends[account][region].databases.values() if not db.source_db_instance_identifier}
    caches = {group.get(key) for rg in elasticache_backends[account][region].replication_groups.values() for group in rg.node_groups
              for key in ("primary_endpoint_address", "reader_endpoint_address")}
    named = []
    for source in filter(None, (part.strip() for part in sources.split(","))):
        if source in databases:
            named.append("primary")
        elif source in caches:
            named.append("redis")
        else:
            raise ValueError(f"source {source} is neither an RDS instance's endpoint nor an ElastiCache one (the sandbox's "
                             f"network faults stand between its API and those)")
    return named


def _hold(experiment: Any, status: str, reason: str | None = None) -> None:
    """Keep the experiment at ``status`` whatever moto's state manager would move it to."""
    experiment._transitions = [(status, status)]
    experiment.status = status
    if reason:
        experiment.STATUS_REASONS = {**experiment.STATUS_REASONS, status: reason}


def _end_experiment(experiment: Any, undos: list[Any], status: str, reason: str | None = None) -> None:
    with _lock:
        if experiment.status in experiment.TERMINAL_STATUSES:
            return
        _hold(experiment, status, reason)
    for undo in reversed(undos):
        undo()


def _monitor(backend: FISBackend, experiment: Any, undos: list[Any], ends: float) -> None:
    """The running experiment's life: its duration, StopExperiment, and its alarm stop conditions."""
    alarms = [c["value"].rsplit(":alarm:", 1)[-1] for c in experiment.stop_conditions or []
              if c.get("source") == "aws:cloudwatch:alarm" and c.get("value")]
    while experiment.status not in experiment.TERMINAL_STATUSES:
        watched = cloudwatch_backends[backend.account_id][backend.region_name].alarms
        firing = [name for name in alarms if name in watched and watched[name].state_value == "ALARM"]
        if firing or experiment.status == "stopping":
            reason = f"Experiment stopped by stop condition {firing[0]}" if firing else "Experiment stopped"
            _end_experiment(experiment, undos, "stopped", reason)
        elif time.monotonic() >= ends:
            _end_experiment(experiment, undos, "completed")
        time.sleep(FIS_POLL_SECONDS)


def iso_seconds(duration: str) -> float:
    """An ISO 8601 duration as FIS writes one (``PT5M``, ``PT1H30M``, ``PT90S``), in seconds."""
    found = re.fullmatch(r"PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?", str(duration))
    if not found:
        raise ValueError(f"duration {duration!r} is not an ISO 8601 duration such as PT5M")
    hours, minutes, seconds = (float(part or 0) for part in found.groups())
    return hours * 3600 + minutes * 60 + seconds


_original_start_experiment = FISBackend.start_experiment


def install() -> None:
    FISBackend.start_experiment = _start_experiment
