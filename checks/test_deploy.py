"""The post-deploy gate (runbook Deploying a New Version, steps 5-6, done right):
``pytest checks/ -m deploy --expected-version X``.

The runbook's loop declares success when running == desired, which is true before a rollout starts, and
compares a quoted version string; here the version, the image, the rollout (polled to a deadline) and the
health of the new version since its deployment started are each a check.
"""

from datetime import datetime, UTC

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import alb, api, cloudwatch, ecs

SECTION = "deploying-a-new-version"


@pytest.mark.deploy
@check(id="deploy.version", title="/health reports the expected version", section=SECTION, severity="critical",
       remediation="deploy.investigate-release",
       depends=("api",))
def test_reported_version(env, expected_version):
    health = api.health(env.clients)
    evidence("GET /health", health)
    expect("version in /health", health.version or "(missing)", "==", expected_version)


@pytest.mark.deploy
@check(id="deploy.image", title="PRIMARY deployment runs the expected image, and it is in ECR", section=SECTION,
       severity="critical", remediation="deploy.investigate-release",
       depends=("aws",))
def test_primary_runs_expected_image(env, expected_version):
    state = ecs.service_state(env.clients)
    expect("PRIMARY deployments", len(state.primary), "==", 1)
    release = ecs.release(env.clients, state.primary[0].task_definition)
    evidence("PRIMARY release", release)
    expect(f"image tag of {release.task_definition.rsplit('/', 1)[-1]}", release.tag or "(none)", "==", expected_version)
    expect(f"{release.image} in ECR", release.in_registry, "==", True)


@pytest.mark.deploy
@pytest.mark.settles  # the gate's later checks judge the rollout's result: they measure once it is done
@check(id="deploy.rollout", title="Rollout completed: running == desired, no failed tasks", section=SECTION,
       severity="critical", remediation="ecs.rollback",
       depends=("aws",))
def test_rollout_completed(env):
    settings = env.config.deploy
    # From the reading of the service the gate's checks share: a rollout already done costs no call of its own.
    wait = ecs.wait_until_stable(env.clients, settings.rollout_timeout_seconds, settings.poll_seconds,
                                 first=ecs.service_state(env.clients))
    evidence("rollout", {"waited_seconds": wait.waited_seconds, "state": wait.state})
    expect(f"service stable after {wait.waited_seconds:g} s (deadline {settings.rollout_timeout_seconds:g} s): "
           f"{wait.state.describe()}", wait.state.stable, "==", True)


def _since_deployment(env) -> cloudwatch.Window:
    state = ecs.service_state(env.clients)
    started = state.primary[0].created_at or datetime.now(UTC)
    return cloudwatch.Window.since(started, env.thresholds.metric_period_seconds)


@pytest.mark.deploy
@check(id="deploy.error-rate", title="Error rate since the deployment started below 1%", section=SECTION,
       severity="critical", remediation="ecs.rollback",
       depends=("traffic", "aws"))
def test_error_rate_since_deployment(env):
    settings = env.config.deploy
    started = ecs.service_state(env.clients).primary[0].created_at or datetime.now(UTC)
    baked = alb.wait_for_requests(env.clients, started, settings.min_requests, settings.bake_timeout_seconds, settings.poll_seconds)
    stats, window = baked.stats, baked.window
    evidence("ALB requests since deployment", {"stats": stats, "waited_seconds": baked.waited_seconds})
    if stats.requests < settings.min_requests:
        pytest.skip(f"too little traffic to judge after waiting {baked.waited_seconds:g} s: {stats.requests:.0f} requests "
                    f"< {settings.min_requests} since {window.describe()}")
    expect(f"5XX error rate since deployment ({stats.errors:.0f} of {stats.requests:.0f} requests)", stats.error_rate,
           "<", settings.error_rate_max, unit="%", window=window.describe())


@pytest.mark.deploy
@check(id="deploy.latency-p95", title="p95 latency since the deployment started below 500 ms", section=SECTION,
       severity="high", remediation="ecs.rollback",
       depends=("api", "traffic", "aws"))
def test_latency_since_deployment(env):
    settings = env.config.deploy
    sample = api.sample(env.clients, settings.sample_requests, settings.sample_path)
    window = _since_deployment(env)
    dims = alb.api_dimensions(env.clients)
    p95 = cloudwatch.percentile(env.clients, "AWS/ApplicationELB", "TargetResponseTime", dims, 95, window)
    evidence("p95 since deployment", {"black_box": sample, "black_box_p95_ms": sample.p95_ms,
                                      "cloudwatch_p95_seconds": p95, "window": window.describe()})
    expect(f"black-box p95 of {len(sample.latencies_ms)} requests to {sample.path}", sample.p95_ms, "<",
           settings.p95_max_ms, unit="ms")
    expect(f"black-box 5XX of {len(sample.statuses)} requests", sample.errors, "==", 0)
    if p95 is not None:  # CloudWatch may not have the deployment's first datapoints yet: the sample still judged
        expect("TargetResponseTime p95 since deployment", p95 * 1000, "<", settings.p95_max_ms, unit="ms",
               window=window.describe())
