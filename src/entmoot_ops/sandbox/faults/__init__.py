"""Faults the tests inject into the sandbox, each with its undo.

A fault that produced CloudWatch datapoints (errors, cache misses, evictions, low storage) is undone by
forgetting those datapoints too, so that the next test sees a healthy window again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any

import inspect
import json
import shlex
import typing

from entmoot_ops.sandbox.faults.api import (api_errors, slow_endpoints, memory_leak, api_latency, api_degraded, api_auth_disabled,
                                            api_storage_fallback, api_task_rate, clock_skew, deploy, traffic_drop, certificate_expiring,
                                            certificate_wrong_host)
from entmoot_ops.sandbox.faults.infrastructure import (ecs_stuck_rollout, alarm, component_killed, component_frozen, dependency_latency,
                                                       dependency_blackhole, aws_throttled, insights_slow, insights_failed, stale_backups, pitr_lag,
                                                       cloudtrail_event, tool_missing)
from entmoot_ops.sandbox.faults.cache import (redis_flushed, redis_memory_pressure, redis_password_changed, redis_oom, redis_keys_without_ttl,
                                              redis_client_pressure, redis_cold_cache, redis_requirepass_missing)
from entmoot_ops.sandbox.faults.database import (replica_paused, slot_inactive, rds_cpu_pressure, rds_low_storage, rds_unavailable, jobs_stuck,
                                                 idle_sessions, idle_in_transaction, long_query, seq_scans, slow_statement)
from entmoot_ops.sandbox.faults.maintenance import (stale_table, bloated_table, invalid_index, unused_index, redundant_index,
                                                    sequence_near_exhaustion, gist_dropped, old_jobs)

if TYPE_CHECKING:
    from entmoot_ops.sandbox.core import Target


@dataclass
class Active:
    name: str
    params: dict[str, Any]
    since: datetime
    undo: Callable[[], None]


FAULTS: dict[str, Callable[..., Callable[[], None]]] = {
    f.__name__: f for f in (api_errors, slow_endpoints, memory_leak, api_latency, api_degraded, api_auth_disabled,
                            api_storage_fallback, api_task_rate,
                            ecs_stuck_rollout, alarm, component_killed, component_frozen, dependency_latency,
                            dependency_blackhole, aws_throttled, insights_slow, insights_failed, redis_flushed,
                            redis_password_changed, redis_oom, redis_keys_without_ttl,
                            replica_paused, slot_inactive, redis_memory_pressure, redis_client_pressure,
                            redis_cold_cache, rds_cpu_pressure, rds_low_storage, rds_unavailable,
                            jobs_stuck, idle_sessions, idle_in_transaction, long_query, seq_scans,
                            deploy, stale_backups, pitr_lag, cloudtrail_event, traffic_drop, stale_table, invalid_index,
                            unused_index, redundant_index, sequence_near_exhaustion, gist_dropped, old_jobs, slow_statement,
                            bloated_table, certificate_expiring, certificate_wrong_host, clock_skew, tool_missing,
                            redis_requirepass_missing)
}


def parameters(name: str) -> dict[str, Any]:
    """A fault's parameters and their defaults, from its signature (the sandbox and the time it began are not the
    caller's to give)."""
    return {p.name: p.default for p in list(inspect.signature(FAULTS[name]).parameters.values())[2:]}


def parameter_types(name: str) -> dict[str, Any]:
    """A fault's parameters' types, from its annotations (the sandbox's type is not the caller's concern)."""
    return typing.get_type_hints(FAULTS[name], localns={"Target": object})


def usage(name: str) -> str:
    """The fault's parameters as a person writes them: ``version=1.5.0 error_rate=0.0``."""
    return " ".join(f"{key}={shlex.quote(default) if isinstance(default, str) else json.dumps(default)}"
                    for key, default in parameters(name).items()) or "(no parameters)"


def arguments(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` checked against the fault's signature, each value of its parameter's type; text (from a shell) is
    read as JSON where the parameter is not text. A wrong name or type is a TypeError of one line, as a call with
    them would be, that names the fault's parameters."""
    hints = parameter_types(name)
    known = parameters(name)
    checked = {}
    for key, value in given.items():
        if key not in known:
            raise TypeError(f"fault {name} has no parameter {key!r}; its parameters: {usage(name)}")
        kinds = typing.get_args(hints[key]) or (hints[key],)
        try:
            checked[key] = _of_kind(value, kinds)
        except ValueError:
            raise TypeError(f"fault {name}: {key}={value!r} is not {' or '.join(k.__name__ for k in kinds)}; "
                            f"its parameters: {usage(name)}") from None
    return checked


def _of_kind(value: Any, kinds: tuple[type, ...]) -> Any:
    if isinstance(value, str) and str not in kinds:
        value = json.loads(value)
    if isinstance(value, int) and not isinstance(value, bool) and float in kinds:
        value = float(value)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise ValueError(value)
    return value


def inject(sandbox: Target, name: str, params: dict[str, Any]) -> Active:
    if name not in FAULTS:
        raise KeyError(f"unknown fault {name!r} (known: {', '.join(sorted(FAULTS))})")
    params = arguments(name, params)
    since = datetime.now(UTC)
    if sandbox.api_pid is not None:
        # The API's metrics carry the time of their batch's first request: without a fresh batch here, requests
        # served under the fault would join one that started before ``since`` and outlive the fault's undo.
        sandbox.api_admin("/_sandbox/flush", {})
    return Active(name=name, params=params, since=since, undo=FAULTS[name](sandbox, since, **params))
