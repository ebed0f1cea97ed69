"""The fixtures every check asks for (``env`` and the resources it is parametrised over, ``oncall``, the run's
reports directory, audit log and expected version), and the parametrisation that gives a check its environments."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from entmoot_ops.clients import Clients
from entmoot_ops.config import Environment
from entmoot_ops.pytest_plugin import memory
from entmoot_ops.pytest_plugin.distribution import oncall_urls
from entmoot_ops.pytest_plugin.environments import handed_over, preflight_of
from entmoot_ops.pytest_plugin.state import SUITE_KEY, Target
from entmoot_ops.remediation import AuditLog


def _resources(env: Environment, fixture: str) -> list[str]:
    """The resources a per-resource check runs once for, by the fixture it asks for."""
    postgres = env.postgres
    if fixture == "replica":
        return [r.name for r in postgres.replicas]
    if postgres.replica_lag_source == "cloudwatch":
        return [f"cloudwatch:{i}" for i in postgres.replica_instances]
    return [f"postgres:{r.name}" for r in postgres.replicas]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    suite = metafunc.config.stash[SUITE_KEY]
    fixture = next((f for f in ("replica", "lag_target") if f in metafunc.fixturenames), None)
    if fixture:
        params = []
        for name, env in suite.environments.items():
            resources = _resources(env, fixture)
            params += [pytest.param(name, r, id=f"{name}-{r.split(':')[-1]}") for r in resources]
            if not resources:  # said once, as a skip; an empty parameter set would be pytest's NOTSET
                reason = (f"no {'replica' if fixture == 'replica' else 'replica lag source'} configured in {name} "
                          f"(postgres.replicas{'' if fixture == 'replica' else ' / postgres.replica_instances'} is empty)")
                params.append(pytest.param(name, None, id=f"{name}-none", marks=pytest.mark.skip(reason=reason)))
        metafunc.parametrize(("env", fixture), params, indirect=True)
    elif "env" in metafunc.fixturenames:
        metafunc.parametrize("env", list(suite.environments), indirect=True, ids=list(suite.environments))


@pytest.fixture(scope="session")
def env(request: pytest.FixtureRequest) -> Any:
    return target_of(request.config, request.param)


@pytest.fixture
def oncall(request: pytest.FixtureRequest, env: Target) -> list[Any]:
    return _oncall(request.config, env)


@pytest.fixture
def replica(request: pytest.FixtureRequest, env: Target) -> Any:
    return _replica(env, request.param)


@pytest.fixture
def lag_target(request: pytest.FixtureRequest) -> tuple[str, str]:
    return _lag_target(request.param)


def target_of(config: pytest.Config, name: str) -> Target:
    """The environment as checks receive it: one for the run, whose clients and connections every check of it
    shares, on pytest's thread or measuring ahead (closed when the run ends)."""
    suite = config.stash[SUITE_KEY]
    if name not in suite.targets:
        if name not in suite.preflights and suite.handoff is not None and suite.handoff.exists():
            handed_over(suite)
        if name not in suite.preflights:  # checks run from a path pytest_sessionstart did not recognise
            suite.preflights[name] = preflight_of(suite, name)
        suite.targets[name] = Target(suite.environments[name], Clients(suite.environments[name], preflight=suite.preflights[name]))
        memory.memory_of(config).recall(name)  # read while its checks measure (an xdist worker's first sight of it)
    return suite.targets[name]


def _oncall(config: pytest.Config, env: Target) -> list[Any]:
    """The on-call hosts as testinfra hosts (see :func:`oncall_urls`), their connections opened: a command sent while
    the warm-up still connects would open a second one beside it."""
    found = [env.clients.host(url) for url in oncall_urls(config, env.config)]
    warmups = config.stash[SUITE_KEY].ssh_warmups
    for host in found:
        if getattr(host.backend, "controlpath", None) in warmups:
            warmups[host.backend.controlpath].join()  # bounded by ssh's ConnectTimeout and keep-alives
    return found


def _replica(env: Target, name: str) -> Any:
    return next(r for r in env.config.postgres.replicas if r.name == name)


def _lag_target(param: str) -> tuple[str, str]:
    source, name = param.split(":", 1)
    return source, name


# The fixtures whose values a check can be given off pytest's thread, to measure ahead of its turn: each is the
# environment, or follows from the check's parameters and the run's options (arguments() gives them). pytest's own
# ``request`` is among a check's fixtures (the environment's fixture asks for it), never among its arguments.
GIVEN_OFF_PYTEST = frozenset({"env", "oncall", "replica", "lag_target", "expected_version"})
WITHOUT_PYTEST = GIVEN_OFF_PYTEST | {"request"}


def arguments(item: pytest.Function, env: Target) -> dict[str, Any]:
    """A check's arguments as its fixtures give them (only those of WITHOUT_PYTEST)."""
    params = item.callspec.params
    given = {"env": lambda: env, "oncall": lambda: _oncall(item.config, env), "replica": lambda: _replica(env, params["replica"]),
             "lag_target": lambda: _lag_target(params["lag_target"]),
             "expected_version": lambda: item.config.getoption("entmoot_expected_version")}
    return {name: given[name]() for name in parameters(item.obj)}


@functools.cache
def parameters(function: Callable[..., Any]) -> tuple[str, ...]:
    """The names a check function takes (its fixtures)."""
    return tuple(inspect.signature(function).parameters)


@pytest.fixture(scope="session")
def reports_dir(request: pytest.FixtureRequest) -> Path:
    """Where this run's reports go: what a check run leaves beside junit and Allure (locust's files, say)."""
    return request.config.stash[SUITE_KEY].reports_dir or Path("reports")


@pytest.fixture(scope="session")
def audit_log(request: pytest.FixtureRequest) -> AuditLog:
    """Where every action of this run is written: remediations, chaos experiments."""
    return request.config.stash[SUITE_KEY].audit


@pytest.fixture(scope="session")
def expected_version(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("entmoot_expected_version")
