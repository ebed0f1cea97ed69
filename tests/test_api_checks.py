"""The API as the real Entmoot serves it: a public /health beside protected routes, component health in the
body, and authentication that must really be enforced."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from entmoot_ops.probes.api import components, reports_failure

# The two bodies of the real API that the suite used to pass: after a start-up fallback from Redis to memory,
# and degraded with Redis failing. Both say "healthy" at the top.
FALLBACK = {"status": "healthy", "version": "1.4.2", "storage": {"backend": "in-memory", "entries": 12}}
REDIS_FAILED = {"status": "healthy", "version": "1.4.2", "storage": {"backend": "redis", "redis_ping": "failed"}}
HEALTHY = {"status": "healthy", "version": "1.4.2", "storage": {"backend": "redis", "redis_ping": "ok"}}


def test_components_are_flattened_and_failure_words_recognised():
    assert components(REDIS_FAILED) == {"status": "healthy", "version": "1.4.2", "storage.backend": "redis",
                                        "storage.redis_ping": "failed"}
    bad = ("failed", "error", "down")
    assert reports_failure("failed", bad) and reports_failure("error: TimeoutError", bad) and reports_failure("DOWN", bad)
    assert not reports_failure("ok", bad) and not reports_failure("redis", bad) and not reports_failure("", bad)


@pytest.fixture
def real_shaped_api():
    """A stand-in for the real API on loopback: public /health with a chosen body, 401 on /api/* without a key, and
    the protected route's answer to a key (``protected``, 200 unless a test breaks it)."""
    state = {"body": HEALTHY, "protected": 200, "anonymous": 401}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            return

        def do_GET(self):
            authorised = self.headers.get("Authorization", "").startswith("Bearer ")
            status, body = (200, state["body"]) if self.path == "/health" else \
                ((state["protected"], []) if authorised else (state["anonymous"], {"error": "unauthorized"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("body,expected", [
    (FALLBACK, "storage.backend in /health: measured in-memory, threshold == redis"),
    (REDIS_FAILED, "components reporting failure (failing: storage.redis_ping=failed): measured 1, threshold == 0"),
], ids=["in-memory-fallback", "redis-ping-failed"])
def test_health_components_of_the_real_body_shapes(body, expected, real_shaped_api, run_checks, environments):
    state, url = real_shaped_api
    state["body"] = body
    directory = environments(replace={'url = "env:ENTMOOT_SANDBOX_API_URL"': f'url = "{url}"'})
    run = run_checks("-m", "morning", "-k", "api_health", "--environments-dir", str(directory))
    failed = run.result("api.health")
    assert failed.outcome == "fail", run.output[-2000:]
    assert expected in failed.message and "remediation api.investigate-health" in failed.message
    state["body"] = HEALTHY
    assert run_checks("-m", "morning", "-k", "api_health", "--environments-dir", str(directory)).outcome("api.health") == "pass"


def test_public_health_beside_protected_routes_with_no_credential_configured(real_shaped_api, run_checks, environments):
    """An environment that configures no credential: /health is still read, and auth is still proven enforced."""
    _, url = real_shaped_api
    directory = environments(replace={'url = "env:ENTMOOT_SANDBOX_API_URL"': f'url = "{url}"',
                                      'auth = { scheme = "bearer", secret = "env:ENTMOOT_SANDBOX_API_TOKEN" }': ""})
    run = run_checks("-m", "morning", "-k", "api_health or auth_enforced", "--environments-dir", str(directory))
    assert run.by_outcome() == {"pass": {"api.health", "api.auth-enforced"}}, run.output[-2000:]
    assert run.result("api.auth-enforced").measured == "401"  # judged on the anonymous request alone


@pytest.mark.parametrize("broken", ["protected", "anonymous"], ids=["with-credential", "without-credential"])
def test_a_server_error_on_the_protected_route_proves_nothing_about_auth(broken, real_shaped_api, run_checks, environments):
    """A 500 says the route fails, not that the API checked (or refused) a credential: an ERROR naming it, never a PASS."""
    state, url = real_shaped_api
    state[broken] = 500
    directory = environments(replace={'url = "env:ENTMOOT_SANDBOX_API_URL"': f'url = "{url}"'})
    run = run_checks("-m", "morning", "-k", "auth_enforced", "--environments-dir", str(directory))
    errored = run.result("api.auth-enforced")
    assert errored.outcome == "error" and errored.junit == "error", run.output[-2000:]
    assert "HTTP 500" in errored.message and "/api/projects" in errored.message


def test_auth_switched_off_is_a_security_failure(sandbox, run_checks):
    with sandbox.fault("api_auth_disabled"):
        run = run_checks("-m", "handoff", "-k", "auth_enforced")
    failed = run.result("api.auth-enforced")
    assert failed.outcome == "fail" and failed.junit == "failure"
    assert "HTTP status of /api/projects without credential: measured 200, threshold in {401, 403}" in failed.message
    assert "remediation api.restore-auth" in failed.message
    assert run_checks("-m", "deploy", "-k", "auth_enforced", "--expected-version", "x").outcome("api.auth-enforced") == "pass"


def test_a_degraded_health_names_each_failing_component(sandbox, run_checks):
    """Redis stopped: the verdict names the failing paths and values, not only "measured degraded"."""
    sandbox.component("redis", "stop")
    try:
        run = run_checks("-m", "morning", "-k", "api_health")
    finally:
        sandbox.component("redis", "start")
    failed = run.result("api.health")
    assert failed.outcome == "fail", run.output[-2000:]
    assert failed.message.startswith("health status (failing: checks.redis=error: "), failed.message
    assert "storage.redis_ping=failed): measured degraded, threshold in {healthy, ok}" in failed.message
