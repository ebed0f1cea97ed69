"""Runbook Performance Optimization > Connection Pool Tuning (-m weekly): the application's pool per task against the
runbook's formula ``(core_count * 2) + effective_spindle_count`` for the database's cores, and against
``max_connections`` (less the reserved connections) shared by the tasks running now."""

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import ecs, postgres, rds


@pytest.mark.weekly
@check(id="postgres.pool-size", title="The pool per task fits the database's cores and connections", section="connection-pool-tuning",
       severity="medium", remediation="postgres.resize-pool",
       depends=("primary", "aws"))
def test_pool_size(env):
    settings = env.config.postgres
    variables = ecs.container_environment(env.clients)
    pool = settings.pool_size or int(variables.get("DATABASE_POOL_SIZE", 0)) or None
    if pool is None:
        pytest.skip("no pool size: set postgres.pool_size, or DATABASE_POOL_SIZE in the service's task definition")
    overflow = settings.pool_max_overflow if settings.pool_size else int(variables.get("DATABASE_MAX_OVERFLOW", 0))
    instance = rds.instance(env.clients)
    cores = rds.physical_cores(env.clients, instance.instance_class)
    formula = cores * 2 + settings.effective_spindles
    running = max(ecs.service_state(env.clients).running, 1)
    with env.clients.postgres(settings.primary_dsn, name="primary") as primary:
        usable = postgres.connection_usage(primary).usable
    evidence("pool sizing", {"pool_size": pool, "max_overflow": overflow, "source": "config" if settings.pool_size else "task definition",
                             "instance_class": instance.instance_class, "physical_cores": cores, "formula": formula,
                             "running_tasks": running, "usable_connections": usable})
    expect(f"connections per task (pool {pool} + overflow {overflow}) against usable connections {usable} / {running} running tasks",
           pool + overflow, "<=", usable // running)
    expect(f"pool size against {env.config.postgres.pool_formula_max_factor:g} x the formula ({cores} cores of {instance.instance_class} "
           f"x 2 + {settings.effective_spindles} spindle = {formula})", pool, "<=", settings.pool_formula_max_factor * formula)
