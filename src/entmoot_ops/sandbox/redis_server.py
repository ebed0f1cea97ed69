"""A password-protected Redis with a memory limit and LRU eviction, like the ElastiCache node."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from entmoot_ops.sandbox.processes import free_port, spawn, stop, wait_until

MAXMEMORY = 64 * 1024 * 1024


@dataclass
class RedisServer:
    root: Path
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None

    def client(self) -> redis.Redis:
        # One attempt, bounded: redis-py would retry a frozen server three times, and hold the agent for 20 s.
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2, socket_connect_timeout=2,
                           retry=Retry(NoBackoff(), 0), decode_responses=True)

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        log = self.root / "redis.log"
        self.process = spawn([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", self.password,
                              "--maxmemory", str(MAXMEMORY), "--maxmemory-policy", "allkeys-lru", "--save", "",
                              "--appendonly", "no", "--dir", str(self.root)], log=log)
        wait_until(lambda: self.client().ping(), what="Redis", process=self.process, log=log)

    def restart(self) -> None:
        if self.pid is None:
            self.start()

    def close(self) -> None:
        stop(self.process)
