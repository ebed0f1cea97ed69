"""Incident bundle: Redis Connection Issues (-m incident -k redis). Each cause of "timeout or NOAUTH" gets its own
verdict: a rotated password (WRONGPASS), no password (NOAUTH), a frozen Redis (timeout), a dead one (refused), a
full one under noeviction (OOM, with a maxmemory plan that never FLUSHALLs), and a cluster whose state is fail."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time

import pytest
import redis

from entmoot_ops.sandbox.processes import free_port

PASSWORD = 'password = "env:ENTMOOT_SANDBOX_REDIS_PASSWORD"\n'
SELF_MANAGED = {'replication_group = "entmoot-redis-sandbox"\n':
                "config_set_allowed = true\nmaxmemory_max_bytes = 268435456\n"}


def test_a_healthy_sandbox_passes(sandbox, run_checks):
    run = run_checks("-m", "incident", "-k", "redis")
    assert run.by_outcome() == {"pass": {"redis.connection", "redis.oom", "redis.reachable"}, "skip": {"redis.cluster-state"}}, \
        run.output[-3000:]
    assert "cluster mode is disabled" in run.result("redis.cluster-state").message


def test_a_rotated_password_is_wrongpass_and_no_password_is_noauth(sandbox, run_checks, environments):
    with sandbox.fault("redis_password_changed"):
        rotated = run_checks("-m", "incident", "--check", "redis.connection")
        anonymous = run_checks("-m", "incident", "--check", "redis.connection",
                               "--environments-dir", str(environments(replace={PASSWORD: ""})))
    message = rotated.result("redis.connection").message
    assert rotated.outcome("redis.connection") == "fail", rotated.output[-3000:]
    assert re.search(r"new connection to 127\.0\.0\.1:\d+: Redis refused the password \(WRONGPASS\): .* \(invalid "
                     r"username-password pair or user is disabled\.\): measured wrong-password, threshold == ok "
                     r"-> remediation redis.check-auth-and-clients",
                     message), message
    assert "Redis demands a password and none was sent (NOAUTH)" in anonymous.result("redis.connection").message
    assert sandbox.env["ENTMOOT_SANDBOX_REDIS_PASSWORD"] not in rotated.output + anonymous.output


@pytest.mark.parametrize(("fault", "verdict"), [("component_frozen", "timeout"), ("component_killed", "refused")])
def test_a_frozen_redis_times_out_and_a_dead_one_refuses(sandbox, run_checks, fault, verdict):
    with sandbox.fault(fault, component="redis"):
        run = run_checks("-m", "incident", "--check", "redis.connection", timeout=120)
    result = run.result("redis.connection")
    assert result.outcome == "fail" and f"measured {verdict}, threshold == ok" in result.message, run.output[-3000:]
    assert run.seconds < 60


def test_a_full_redis_under_noeviction_is_oom_with_a_plan_that_never_flushes(sandbox, run_checks):
    with sandbox.fault("redis_oom"):
        run = run_checks("-m", "incident", "--check", "redis.oom")
    message = run.result("redis.oom").message
    assert re.search(r"OOM: used memory under maxmemory-policy noeviction \(\d+ of \d+ bytes; [1-9]\d* writes refused with OOM "
                     r"since start\): measured (9\d|1\d\d)\.\d\d%, threshold < 90\.00% -> remediation redis.maxmemory", message), message
    assert "ElastiCache refuses CONFIG SET" in run.output and "never FLUSHALL" in run.output


def test_a_self_managed_redis_gets_more_maxmemory_only_where_allowed(sandbox, run_checks, environments):
    with sandbox.fault("redis_oom"):
        refused = environments(replace={'replication_group = "entmoot-redis-sandbox"\n': ""})
        planned = run_checks("-m", "incident", "--check", "redis.oom", "--remediate", "--environments-dir", str(refused))
        allowed = environments(replace=SELF_MANAGED)  # the same directory, rewritten
        fixed = run_checks("-m", "incident", "--check", "redis.oom", "--remediate", "--environments-dir", str(allowed))
    assert planned.outcome("redis.oom") == "fail", planned.output[-3000:]
    assert "(action failed: CONFIG SET maxmemory on sandbox needs redis.config_set_allowed = true and redis.maxmemory_max_bytes)" \
        in planned.output
    assert fixed.outcome("redis.oom") == "fixed", fixed.output[-3000:]
    acted = next(json.loads(line) for line in (fixed.reports / "audit.jsonl").read_text().splitlines() if '"acted"' in line)
    assert acted["changes"][0]["action"] == "redis:CONFIG SET maxmemory" and acted["changes"][0]["after"] > acted["changes"][0]["before"]
    assert "FLUSHALL" not in json.dumps(acted)


def _port_with_cluster_bus() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too: an ephemeral port above 55535 has none, and
    redis-server refuses to start on it."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _cluster_node(directory) -> tuple[subprocess.Popen, int]:
    """A redis-server in cluster mode with no slots assigned; a port lost to another process is tried again."""
    for attempt in range(3):
        port = _port_with_cluster_bus()
        server = subprocess.Popen([shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                   "--cluster-enabled", "yes", "--cluster-config-file", str(directory / f"nodes-{attempt}.conf"),
                                   "--save", "", "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while server.poll() is None and time.monotonic() < deadline:
            try:
                redis.Redis(port=port, socket_timeout=1).ping()
                return server, port
            except redis.ConnectionError:
                time.sleep(0.1)
        server.terminate()
        server.wait(10)
    raise AssertionError("a cluster-mode redis-server did not start")


def test_a_cluster_without_its_slots_is_cluster_state_fail(sandbox, run_checks, environments, tmp_path):
    server, port = _cluster_node(tmp_path)
    try:
        directory = environments(replace={'url = "env:ENTMOOT_SANDBOX_REDIS_URL"\n' + PASSWORD: f'url = "redis://127.0.0.1:{port}/0"\n'})
        run = run_checks("-m", "incident", "--check", "redis.cluster-state", "--environments-dir", str(directory))
    finally:
        server.terminate()
        server.wait(10)
    message = run.result("redis.cluster-state").message
    assert "cluster_state (0 of 16384 slots assigned, 1 nodes known): measured fail, threshold == ok" in message, run.output[-3000:]
