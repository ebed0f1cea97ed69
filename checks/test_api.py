"""Runbook Morning Checklist [1] and Quick Reference: API health, its components, and auth where it belongs."""

import pytest

from entmoot_ops.check import check, evidence, expect, expect_present
from entmoot_ops.errors import ConfigError, DependencyError
from entmoot_ops.probes import api


@pytest.mark.morning
@pytest.mark.handoff
@check(id="api.health", title="API reports healthy, and so does each of its components", section="morning-checklist-start-of-business-day",
       severity="critical", remediation="api.investigate-health",
       depends=("api",))
def test_api_health(env):
    settings = env.config.api
    health = api.health(env.clients)
    evidence("GET /health", health)
    found = api.components(health.body or {})
    # The top-level status is judged against healthy_statuses; every other value is a component's. The failing ones
    # are named on every reading, so that a "degraded" verdict says what degraded.
    failing = [f"{path}={value}" for path, value in found.items() if path != "status"
               and api.reports_failure(value, settings.health_bad_values)]
    named = f" (failing: {', '.join(failing)})" if failing else ""
    expect("HTTP status of /health" + named, health.http_status, "==", 200)
    # A degraded body with HTTP 200 is the case the runbook's `curl | jq` lets through.
    expect("health status" + named, health.status or "(missing)", "in", settings.healthy_statuses)
    expect_present("version in /health", health.version)
    for path, wanted in settings.health_expect.items():
        expect(f"{path} in /health", found.get(path, "(missing)"), "==", wanted)
    expect("components reporting failure" + named, len(failing), "==", 0)


@pytest.mark.morning
@pytest.mark.handoff
@pytest.mark.deploy
@check(id="api.auth-enforced", title="Protected routes refuse a request without credential and accept ours",
       section="quick-reference", severity="critical", remediation="api.restore-auth",
       depends=("api",))
def test_auth_enforced(env):
    auth = api.auth_enforcement(env.clients)
    evidence("protected path with and without credential", auth)
    if auth.without_credential == 404:
        raise ConfigError(f"api.protected_path: {auth.url} answered 404", fix="set api.protected_path to a route that exists")
    _refuse_server_error(auth.url, auth.without_credential, "without")
    # A 2xx here means anyone can read the API: a security failure, not a configuration detail.
    expect(f"HTTP status of {env.config.api.protected_path} without credential", auth.without_credential, "in", (401, 403))
    _refuse_server_error(auth.url, auth.with_credential, "with our")
    if auth.with_credential in (401, 403):
        raise ConfigError(f"api.auth: the API refused the configured credential (HTTP {auth.with_credential} on {auth.url})",
                          fix="check api.auth.secret, and api.auth.scheme/header against what the API expects")
    if auth.with_credential is not None:
        expect(f"HTTP status of {env.config.api.protected_path} with our credential", auth.with_credential, "not in", (401, 403))


def _refuse_server_error(url: str, status: int | None, asked: str) -> None:
    """A 5XX says the route fails, not whether the API checked a credential: auth is not proven either way."""
    if status is not None and status >= 500:
        raise DependencyError("API", f"{url} answered HTTP {status} {asked} credential", reachable=True,
                              fix="the route fails, so auth cannot be judged: see api.health and api.error-rate")
