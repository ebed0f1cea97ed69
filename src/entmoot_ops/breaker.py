"""A circuit breaker per dependency endpoint, for one run.

A frozen dependency accepts TCP and never answers: each call then costs its whole timeout budget (connect,
read, attempts). Once an endpoint has failed to answer, later calls to it in the same run are refused at once,
naming when and after how long it gave up. A remediation's re-check measures fresh (:func:`fresh`): it asks
again, and an answer closes the circuit.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from entmoot_ops.errors import DependencyError

_fresh: contextvars.ContextVar[bool] = contextvars.ContextVar("fresh", default=False)


@contextlib.contextmanager
def fresh() -> Iterator[None]:
    """Measure anew: open circuits are tried again and remembered readings are not used."""
    token = _fresh.set(True)
    try:
        yield
    finally:
        _fresh.reset(token)


def measuring_fresh() -> bool:
    return _fresh.get()


@dataclass(frozen=True)
class Trip:
    dependency: str
    endpoint: str
    at: datetime
    waited_seconds: float
    reason: str
    throttled: bool = False  # it answered: "Rate exceeded", until the retries were spent

    def error(self, dependency: str) -> DependencyError:
        if self.throttled:
            return DependencyError(dependency, f"throttled at {self.at:%H:%M:%S} ({self.reason}); not asked again in this run",
                                   reachable=True, fix="AWS is rate-limiting this account: run fewer environments at once (-n), or later")
        return DependencyError(dependency, f"no answer from {self.endpoint} at {self.at:%H:%M:%S} after {self.waited_seconds:.1f} s "
                                           f"({self.reason}); not asked again in this run")


class CircuitBreaker:
    def __init__(self) -> None:
        self._open: dict[str, Trip] = {}
        self._lock = threading.Lock()

    def guard(self, endpoint: str, dependency: str) -> None:
        """Raise at once when ``endpoint`` gave no answer earlier in this run (unless measuring fresh)."""
        trip = self._open.get(endpoint)
        if trip is not None and not _fresh.get():
            raise trip.error(dependency)

    def trip(self, endpoint: str, dependency: str, waited_seconds: float, reason: str, *, throttled: bool = False) -> None:
        with self._lock:
            self._open.setdefault(endpoint, Trip(dependency, endpoint, datetime.now().astimezone(), waited_seconds, reason, throttled))

    def close(self, endpoint: str) -> None:
        with self._lock:
            self._open.pop(endpoint, None)

    def tripped(self) -> tuple[Trip, ...]:
        return tuple(self._open.values())

    @contextlib.contextmanager
    def call(self, endpoint: str, dependency: str, no_answer: tuple[type[BaseException], ...],
             answered: Callable[[BaseException], bool] = lambda _: False) -> Iterator[None]:
        """One call to ``endpoint``: refused at once if its circuit is open; opens it when the call gets no answer.
        ``answered`` tells the errors among ``no_answer`` that are answers after all (a wrong password, say)."""
        self.guard(endpoint, dependency)
        started = time.monotonic()
        try:
            yield
        except no_answer as exc:
            if not answered(exc):
                self.trip(endpoint, dependency, time.monotonic() - started, type(exc).__name__)
            raise
        self.close(endpoint)


breaker = CircuitBreaker()
