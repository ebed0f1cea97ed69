"""Steady, bounded traffic through the sandbox API: what production has and some faults only show in."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests


class Traffic:
    """Steady real requests through the API while the matrix runs, as production has: faults that only show in
    traffic (errors, latency) need it. Open loop, like users: a slow API gets as many requests, not fewer."""

    def __init__(self, url: str, headers: dict[str, str], path: str, per_second: float = 20):
        self.url, self.path, self.pause = url, path, 1 / per_second
        self.answers: Counter[str] = Counter()  # "2xx", "5xx", "no answer"
        self.session = requests.Session()
        self.session.headers.update(headers)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="matrix-traffic")
        self._room = threading.BoundedSemaphore(100)  # a dead API must not pile up requests without bound
        self._thread = threading.Thread(target=self._loop, daemon=True, name="matrix-traffic")

    def _get(self, n: int) -> None:
        try:
            status = self.session.get(self.url + self.path.format(id=n % 50 + 1), timeout=5).status_code
            self.answers[f"{status // 100}xx"] += 1
        except requests.RequestException:
            self.answers["no answer"] += 1  # a fault may refuse requests: that is what the checks are to see
        finally:
            self._room.release()

    def _loop(self) -> None:
        n = 0
        while not self._stop.wait(self.pause):
            n += 1
            if self._room.acquire(blocking=False):
                self._pool.submit(self._get, n)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.session.close()
