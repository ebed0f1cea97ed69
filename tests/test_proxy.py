"""The dependency proxy between the sandbox's API and Redis/the primary: latency on every answer, and a black
hole that holds traffic (a partition) and lets it through, intact, when it heals."""

from __future__ import annotations

import socket
import time

import psycopg
import pytest
import requests


def _ping(port: int, password: str, timeout: float) -> tuple[bytes, float]:
    """AUTH and PING over a raw socket, as any client does; returns the last answer and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(f"AUTH {password}\r\nPING\r\n".encode())
        answer = b""
        while not answer.endswith(b"+PONG\r\n"):
            chunk = connection.recv(100)
            if not chunk:
                break
            answer += chunk
    return answer, time.monotonic() - started


def _ports(sandbox) -> dict:
    return sandbox.control("GET", "state")["ports"]


def test_latency_slows_what_goes_through_the_proxy_only(sandbox):
    ports, password = _ports(sandbox), sandbox.env["ENTMOOT_SANDBOX_REDIS_PASSWORD"]
    with sandbox.fault("dependency_latency", dependency="redis", ms=600):
        proxied, slow = _ping(ports["proxy_redis"], password, timeout=5)
        direct, fast = _ping(ports["redis"], password, timeout=5)
    assert proxied.endswith(b"+PONG\r\n") and direct.endswith(b"+PONG\r\n")
    assert slow >= 0.6 and fast < 0.3, (slow, fast)
    assert _ping(ports["proxy_redis"], password, timeout=5)[1] < 0.3  # undone


def test_a_black_hole_holds_traffic_and_lets_it_through_when_it_heals(sandbox):
    ports, password = _ports(sandbox), sandbox.env["ENTMOOT_SANDBOX_REDIS_PASSWORD"]
    sandbox.inject("dependency_blackhole", dependency="redis")
    try:
        with socket.create_connection(("127.0.0.1", ports["proxy_redis"]), timeout=1) as held:
            held.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            with pytest.raises(TimeoutError):  # accepted, then silence
                held.recv(100)
            sandbox.undo("dependency_blackhole")
            held.settimeout(5)
            answer = b""
            while not answer.endswith(b"+PONG\r\n"):
                answer += held.recv(100)
        assert answer == b"+OK\r\n+PONG\r\n"  # what waited in the partition went through, nothing lost
    finally:
        if "dependency_blackhole" in sandbox.control("GET", "state")["faults"]:
            sandbox.undo("dependency_blackhole")


def test_the_api_reaches_the_primary_through_the_proxy_and_the_probes_do_not(sandbox):
    """Partitioned from the primary, the API's database routes hang; the primary itself answers the suite."""
    headers = {"Authorization": f"Bearer {sandbox.env['ENTMOOT_SANDBOX_API_TOKEN']}"}
    with sandbox.fault("dependency_blackhole", dependency="primary"):
        with pytest.raises(requests.ReadTimeout):
            requests.get(sandbox.env["ENTMOOT_SANDBOX_API_URL"] + "/api/projects", headers=headers, timeout=2)
        with psycopg.connect(sandbox.env["ENTMOOT_SANDBOX_PG_PRIMARY_DSN"], connect_timeout=2) as direct:
            assert direct.execute("SELECT 1").fetchone() == (1,)
    assert requests.get(sandbox.env["ENTMOOT_SANDBOX_API_URL"] + "/api/projects", headers=headers, timeout=10).ok
