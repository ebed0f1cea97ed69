"""Child processes of the sandbox: free loopback ports, unprivileged users, and death with the parent."""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import random
from concurrent.futures import ThreadPoolExecutor
import pwd
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1


# From a port's choice to its server's bind, with room for a slow start: how long a choice stays reserved.
RESERVED_SECONDS = 120
LOWEST_PORT = 10000  # below, the ports of well-known services (a Pushgateway's 9091, development servers' 8000s)


def free_port() -> int:
    """A loopback port that no server listens on, for a server about to start.

    Chosen below the kernel's ephemeral range: a port that bind(0) hands out is an ephemeral one, and between its
    choice and the server's bind an outgoing connection of any process could take it as its own (a sandbox of CI once
    failed to start so, "address already in use"). The choices of this machine's sandboxes are reserved for a while in
    a file under a lock, so that two starting at once never choose the same. Where the ephemeral range leaves no room
    below it, the kernel chooses."""
    low = ephemeral_ports()[0]
    if low - LOWEST_PORT < 1000:
        return _kernel_port()
    book = Path(tempfile.gettempdir()) / f"entmoot-ops-ports-{os.getuid()}.json"
    with book.open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        handle.seek(0)
        now = time.time()
        try:
            reserved = {int(port): at for port, at in json.loads(handle.read() or "{}").items() if now - at < RESERVED_SECONDS}
        except (ValueError, AttributeError):  # a book left half-written by a killed process: start it afresh
            reserved = {}
        for _ in range(1000):  # a range all taken cannot hold a start up: the kernel chooses then
            port = random.randrange(LOWEST_PORT, low)
            if port not in reserved and _bindable(port):
                break
        else:
            return _kernel_port()
        reserved[port] = now
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(reserved))
    return port


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections (and bind(0))."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _kernel_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    # A sandbox whose supervisor was killed must not leave servers behind.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def service_user() -> str | None:
    """PostgreSQL refuses to run as root: pick an unprivileged account to run it as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) exists")


def chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    record = pwd.getpwnam(user)
    os.chown(path, record.pw_uid, record.pw_gid)
    for directory, subdirectories, files in os.walk(path):
        for name in subdirectories + files:
            os.chown(os.path.join(directory, name), record.pw_uid, record.pw_gid, follow_symlinks=False)


# PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process: every child is forked
# from this one long-lived thread, whichever thread (a control request, a starter) asks for it.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-spawner")


def spawn(argv: list[str], *, log: Path, user: str | None = None, stdin_line: str | None = None,
          feed_later: bool = False) -> subprocess.Popen:
    """A child that dies with the sandbox. Its settings come as ``stdin_line``, or, with ``feed_later``, through
    :func:`feed` once they are known: the child imports what it needs meanwhile."""
    def fork() -> subprocess.Popen:
        handle = log.open("ab")
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT,
                                   stdin=subprocess.PIPE if stdin_line is not None or feed_later else subprocess.DEVNULL,
                                   user=user, preexec_fn=_die_with_parent, cwd="/")
        if stdin_line is not None:
            feed(process, stdin_line)
        return process

    return _spawner.submit(fork).result()


def feed(process: subprocess.Popen, line: str) -> None:
    process.stdin.write((line + "\n").encode())
    process.stdin.close()


def run(argv: list[str], *, user: str | None = None, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, user=user, env=env, capture_output=True, text=True, cwd="/")
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} failed: {result.stderr.strip() or result.stdout.strip()}")


def wait_until(ready: Callable[[], bool], *, what: str, timeout: float = 20, process: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-800:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {process.returncode}: {tail}")
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents first (from /proc: a PostgreSQL server is a postmaster and its children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(parent, []).append(int(entry.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        tree.append(current)
        queue.extend(children.get(current, []))
    return tree


def stop(process: subprocess.Popen | None, *, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if process is None or process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGCONT)  # a hung (SIGSTOPped) process cannot act on SIGTERM
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
