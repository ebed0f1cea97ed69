"""Progress of long waits (rollout polling, remediation verification, an npm install): a line at least every
few seconds, so that a person watching a terminal never wonders whether the run is stuck.

The pytest plugin points :data:`write` at the terminal (around pytest's output capture); elsewhere it is stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

EVERY_SECONDS = 5.0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


write: Callable[[str], None] = _stderr


class Progress:
    """Call it with the current state as often as you like; it prints at most every ``every`` seconds."""

    def __init__(self, what: str, every: float = EVERY_SECONDS):
        self.what = what
        self.every = every
        self.started = time.monotonic()
        self._last = self.started

    def __call__(self, state: str) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            write(f"... {self.what}: {state} ({now - self.started:.0f} s)")
