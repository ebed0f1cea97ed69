"""The Entmoot API: its /health (public on the real service), its components, and whether it demands auth."""

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


def components(body: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every scalar in the /health body by dotted path (``storage.backend``, ``checks.redis``)."""
    found: dict[str, str] = {}
    for key, value in body.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(components(value, path + "."))
        elif value is not None and not isinstance(value, list):
            found[path] = str(value)
    return found


def reports_failure(value: str, bad_values: tuple[str, ...]) -> bool:
    """``error: TimeoutError``, ``FAILED`` and ``down`` all report a failure: the first word decides."""
    words = value.strip().lower().replace(":", " ").split()
    return bool(words) and words[0] in {b.lower() for b in bad_values}


@dataclass(frozen=True)
class AuthEnforcement:
    url: str
    with_credential: int | None  # HTTP status; None when the environment configures no credential
    without_credential: int


def auth_enforcement(clients: Clients) -> AuthEnforcement:
    """The protected path asked twice: with the configured credential, and with none."""
    url = clients.api_url + clients.env.api.protected_path
    with measuring("API"):
        anonymous = clients.http(authenticated=False).get(url, timeout=clients.http_timeout).status_code
        configured = clients.env.api.auth.scheme != "none"
        authenticated = clients.http().get(url, timeout=clients.http_timeout).status_code if configured else None
    return AuthEnforcement(url=url, with_credential=authenticated, without_credential=anonymous)


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
