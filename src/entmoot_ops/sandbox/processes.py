"""Child processes of the sandbox: free loopback ports, unprivileged users, and death with the parent."""

from __future__ import annotations

import ctypes
import os
from concurrent.futures import ThreadPoolExecutor
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
