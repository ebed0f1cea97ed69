"""A password-protected Redis with a memory limit and LRU eviction, like the ElastiCache node. It starts from a
redis.conf, as a self-managed Redis does: the host checks read that file over SSH."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from entmoot_ops.sandbox.processes import chown_tree, free_port, service_user, spawn, stop, wait_until

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

    @property
    def config_file(self) -> Path:
        return self.root / "redis.conf"

    def write_config(self, *, requirepass: bool = True) -> None:
        """redis.conf; ``requirepass=False`` leaves the password out, as a hand-edited file that lost it would (the
        running server keeps its password until it restarts)."""
        lines = [f"port {self.port}", "bind 127.0.0.1", "protected-mode yes", f"maxmemory {MAXMEMORY}",
                 "maxmemory-policy allkeys-lru", 'save ""', "appendonly no", f"dir {self.root}"]
        if requirepass:
            lines.append(f"requirepass {self.password}")
        self.config_file.write_text("\n".join(lines) + "\n")
        self.config_file.chmod(0o600)
        chown_tree(self.config_file, service_user())  # the SSH host's login reads it, as an admin group would

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        log = self.root / "redis.log"
        if not self.config_file.exists():
            self.write_config()
        self.process = spawn([binary, str(self.config_file)], log=log)
        wait_until(lambda: self.client().ping(), what="Redis", process=self.process, log=log)

    def restart(self) -> None:
        if self.pid is None:
            self.start()

    def close(self) -> None:
        stop(self.process)
