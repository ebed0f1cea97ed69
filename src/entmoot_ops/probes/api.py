"""The Entmoot API's /health endpoint, as the runbook's first morning command reads it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from entmoot_ops.clients import Clients
from entmoot_ops.probes import measuring


@dataclass(frozen=True)
class Health:
    url: str
    http_status: int
    status: str | None
    version: str | None
    elapsed_ms: float
    body: dict[str, Any] | None


def health(clients: Clients) -> Health:
    url = clients.api_url + clients.env.api.health_path
    with measuring("API"):
        response = clients.http().get(url, timeout=clients.http_timeout)
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else None
    return Health(
        url=url,
        http_status=response.status_code,
        status=str(body["status"]) if body and "status" in body else None,
        version=str(body["version"]) if body and body.get("version") else None,
        elapsed_ms=round(response.elapsed.total_seconds() * 1000, 1),
        body=body,
    )


@dataclass(frozen=True)
class Sample:
    path: str
    latencies_ms: tuple[float, ...]
    statuses: tuple[int, ...]

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]

    @property
    def errors(self) -> int:
        return sum(1 for s in self.statuses if s >= 500)


def sample(clients: Clients, requests_count: int, path: str) -> Sample:
    """A black-box sample: the suite's own requests, timed end to end (what a user would see)."""
    url = clients.api_url + path
    latencies, statuses = [], []
    with measuring("API"):
        for _ in range(requests_count):
            response = clients.http().get(url, timeout=clients.http_timeout)
            latencies.append(response.elapsed.total_seconds() * 1000)
            statuses.append(response.status_code)
    return Sample(path, tuple(latencies), tuple(statuses))
