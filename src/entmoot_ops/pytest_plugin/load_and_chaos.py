"""The run's actions, load runs (-m load) and chaos experiments (-m chaos): refused where not allowed, before anything
runs, and the fixtures that carry them out (``load_run``, ``chaos_runner``), which the refusals name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from entmoot_ops import load
from entmoot_ops.chaos import experiment_catalogue
from entmoot_ops.chaos import guard as chaos_guard
from entmoot_ops.config import Environment
from entmoot_ops.errors import ConfigError
from entmoot_ops.pytest_plugin.options import checks_dir
from entmoot_ops.pytest_plugin.state import SUITE_KEY, check_id, env_name

# The fixture each action's checks ask for, and the refusal of that action where it is not allowed.
ACTIONS = (("load_run", load.refuse_unless_allowed), ("chaos_runner", chaos_guard.refuse_unless_allowed))


def refuse_unless_allowed(refuse: Any, environment: Environment, **given: Any) -> None:
    try:
        refuse(environment, **given)
    except ConfigError as exc:
        raise pytest.UsageError(f"{exc} ({exc.fix})") from None


def refuse_configured(environments: dict[str, Environment], *, load_run: bool, chaos: bool, confirmed: bool) -> None:
    """Load and chaos are actions: refused before anything runs (the preflight included), in one line, where not allowed."""
    for environment in environments.values():
        if load_run:
            refuse_unless_allowed(load.refuse_unless_allowed, environment, confirmed=confirmed)
        if chaos:
            refuse_unless_allowed(chaos_guard.refuse_unless_allowed, environment, confirmed=confirmed)


def refuse_selected(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Load checks selected otherwise than by -m (-k, node ids): refused here, before any runs."""
    suite = config.stash[SUITE_KEY]
    for fixture, refuse in ACTIONS:
        for name in dict.fromkeys(env_name(item) for item in items if fixture in getattr(item, "fixturenames", ())):
            refuse_unless_allowed(refuse, suite.environments[name], confirmed=suite.confirmed)
    _refuse_selected_experiments(config, items)


def _refuse_selected_experiments(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An experiment file the run selects must be valid, and an experiment asked for by name (--check) allowed
    where it runs (those that -m chaos alone selects are skipped, with the reason, where not allowed)."""
    broken, known = experiment_catalogue.broken(config.rootpath), experiment_catalogue.experiments(config.rootpath)
    asked = set(config.getoption("entmoot_checks"))
    suite = config.stash[SUITE_KEY]
    for item in items:
        item_check = check_id(item)
        if not item_check.startswith("chaos."):
            continue
        name = item_check.removeprefix("chaos.")
        if name in broken:
            raise pytest.UsageError(f"{broken[name]} (correct the file: `entmoot-ops chaos validate` checks them all)")
        if item_check in asked:
            refuse_unless_allowed(chaos_guard.refuse_unless_allowed, suite.environments[env_name(item)],
                                  confirmed=suite.confirmed, experiment=known[name])


@pytest.fixture(scope="session")
def load_run(env, request, reports_dir) -> load.LoadResult:
    """One locust run per environment (a subprocess: see entmoot_ops.load), which the -m load checks judge."""
    import allure

    from entmoot_ops.check import attach_chart

    config = request.config
    result = load.run(env.config, env.clients, reports_dir / "load" / env.name, shape=config.getoption("entmoot_load_shape"),
                      confirmed=config.getoption("entmoot_yes"))
    for path in result.files:  # locust's own report and CSVs, beside the verdicts
        kind = allure.attachment_type.HTML if path.suffix == ".html" else allure.attachment_type.CSV
        allure.attach.file(str(path), name=path.name, attachment_type=kind)
    attach_chart(f"load run on {env.name}", lambda: _load_chart(env, result))
    return result


def _load_chart(env, result: load.LoadResult) -> bytes:
    import csv
    from datetime import UTC, datetime

    from entmoot_ops import charts
    from entmoot_ops.probes import alb, cloudwatch

    history = next(path for path in result.files if path.name.endswith("_stats_history.csv"))
    with history.open() as handle:
        rows = list(csv.DictReader(handle))
    window = cloudwatch.Window.during(datetime.fromtimestamp(result.started, UTC), datetime.fromtimestamp(result.ended, UTC),
                                      env.thresholds.metric_period_seconds)
    hosts = cloudwatch.series(env.clients, "AWS/ApplicationELB", "HealthyHostCount", alb.api_dimensions(env.clients), "Minimum", window)
    return charts.load_run(f"{result.shape} load run on {env.name}: {result.requests} requests, up to {result.users} users", rows,
                           hosts.points, env.thresholds.latency_p95_max_ms)


@pytest.fixture(scope="session")
def chaos_runner(env, request, reports_dir, audit_log):
    """Runs one experiment against the environment; its observations are this suite's checks, run as a user runs them."""
    from entmoot_ops.chaos import observe
    from entmoot_ops.chaos.actions import ActionContext
    from entmoot_ops.chaos.experiment import Experiment, Runner
    from entmoot_ops.clients import Clients
    from entmoot_ops.probes import cloudwatch

    config = request.config
    sandbox = None
    if env.config.kind == "sandbox":
        from entmoot_ops.sandbox.handle import attach

        sandbox = attach(Path(os.environ["ENTMOOT_SANDBOX_STATE"]))
    checks = observe.CheckRunner(checks_dir(config), env.config.name, config.getoption("entmoot_envdir"))
    writable = Clients(env.config, writable=True, preflight=env.clients.preflight)

    def run(experiment: Experiment, *, settle: bool = False):
        context = ActionContext(env.config, env.clients, writable, audit_log, experiment.name, sandbox)
        runner = Runner(checks, context, reports_dir / "chaos" / env.config.name,
                        lambda name, since: observe.SAFEGUARDS[name](env.clients, since),
                        lambda names: cloudwatch.alarm_states(env.clients, names))
        return runner.run(experiment, settle=settle)

    yield run
    writable.close()
