"""Using a sandbox from another process: start one (or attach to a running one), control its faults.

``ENTMOOT_SANDBOX_STATE`` names the state file of a running sandbox: a pytest run, a locust process or a
person at a shell then share one sandbox. Without it, the first user in a process starts its own, which
lives until that process releases it (or dies).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from entmoot_ops.errors import ConfigError, OpsError
from entmoot_ops.secrets import masker

START_TIMEOUT = 90


def default_state_file() -> Path:
    """Where ``entmoot-ops sandbox up`` keeps the state of the sandbox it leaves running."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "entmoot-ops" / "sandbox.json"


@dataclass
class SandboxHandle:
    state_file: Path
    state: dict[str, Any]
    process: subprocess.Popen | None = None  # set when this process started the sandbox
    users: int = 0
    own_directory: Path | None = None  # the temporary directory of a sandbox of this process's own: gone with it

    @property
    def env(self) -> dict[str, str]:
        return self.state["env"]

    @property
    def pids(self) -> dict[str, int | None]:
        return self.control("GET", "state")["pids"]

    def control(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> Any:
        response = requests.request(method, f"{self.env['ENTMOOT_SANDBOX_CONTROL_URL']}/{path}", json=body, timeout=timeout)
        if response.status_code != 200:
            raise OpsError(f"sandbox control {method} /{path}: {response.json().get('error', response.text)}")
        return response.json()

    def inject(self, name: str, /, **params: Any) -> Any:
        return self.control("POST", f"faults/{name}", params)

    def undo(self, name: str) -> Any:
        return self.control("DELETE", f"faults/{name}")

    @contextlib.contextmanager
    def fault(self, name: str, /, **params: Any) -> Iterator[None]:
        self.inject(name, **params)
        try:
            yield
        finally:
            self.undo(name)

    def sync(self) -> Any:
        return self.control("POST", "sync")

    def forget_traffic(self, seconds: float) -> Any:
        return self.control("POST", "forget-traffic", {"seconds": seconds})

    def enforce_iam(self, policies: dict[str, dict]) -> None:
        """Enforce IAM from now on: a user per mode holding its policy (see entmoot_ops.iam.policies); called again,
        it replaces the policies."""
        self.state = self.control("POST", "iam", {"policies": policies})
        for secret in self.state.get("secrets", []):
            masker.add(secret)

    def sign_as(self, mode: str) -> None:
        """Under IAM enforcement, this process's AWS calls are signed as the sandbox's user for ``mode``, as a team
        would use a role per mode; without it, the sandbox's own key stays."""
        os.environ.update(self.state.get("iam", {}).get(mode, {}))

    def component(self, name: str, action: str) -> Any:
        return self.control("POST", f"components/{name}/{action}")

    def release(self) -> None:
        self.users -= 1
        if self.users > 0 or self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.state_file.unlink(missing_ok=True)
        if self.own_directory is not None:
            shutil.rmtree(self.own_directory, ignore_errors=True)
        _handles.pop(self.state_file, None)


_handles: dict[Path, SandboxHandle] = {}


def start(state_file: Path | None = None, *, detached: bool = False) -> SandboxHandle:
    """Start a sandbox. It dies with this process unless ``detached`` (then it runs until ``sandbox down``)."""
    # Fails fast when the sandbox extra is missing, without importing it here: the sandbox process does (over a second).
    missing = [name for name in SANDBOX_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"the sandbox needs the 'sandbox' extra (pip install -e '.[sandbox]'): no module named {missing[0]!r}")
    own_directory = None if state_file else Path(tempfile.mkdtemp(prefix="entmoot-sandbox-state-"))
    state_file = state_file or own_directory / "state.json"
    state_file.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            handle = _start(state_file, detached)
            handle.own_directory = own_directory
            return handle
        except KeyboardInterrupt:
            # Ctrl-C reached the sandbox too, which stops and cleans up after itself; its log is no longer needed. A
            # start that failed keeps it: the error names it.
            if own_directory is not None:
                shutil.rmtree(own_directory, ignore_errors=True)
            raise
        except _PortTaken:
            # A loopback port the sandbox picked was taken before it bound it (another sandbox, an outgoing
            # connection's ephemeral port): its servers are gone with it, so it starts again on fresh ports.
            if attempt == PORT_ATTEMPTS:
                raise OpsError(f"sandbox did not start: the loopback ports it picked were taken, {PORT_ATTEMPTS} times "
                               f"(log: {state_file.with_suffix('.log')})") from None
    raise AssertionError("unreachable")


PORT_ATTEMPTS = 3


class _PortTaken(Exception):
    pass


def _start(state_file: Path, detached: bool) -> SandboxHandle:
    error_file = state_file.with_suffix(".error")
    error_file.unlink(missing_ok=True)
    log = state_file.with_suffix(".log").open("ab")
    lifetime = [] if detached else ["--parent-pid", str(os.getpid())]
    process = subprocess.Popen([sys.executable, "-m", "entmoot_ops.sandbox", "serve", "--state-file", str(state_file), *lifetime],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=detached)
    deadline = time.monotonic() + START_TIMEOUT
    while not state_file.exists():
        if error_file.exists() or process.poll() is not None:
            time.sleep(0.2)
            reason = error_file.read_text() if error_file.exists() else f"exited with {process.returncode}"
            if "Address already in use" in reason:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                raise _PortTaken(reason)
            raise OpsError(f"sandbox did not start: {reason} (log: {state_file.with_suffix('.log')})")
        if time.monotonic() > deadline:
            process.kill()
            raise OpsError(f"sandbox did not start within {START_TIMEOUT} s (log: {state_file.with_suffix('.log')})")
        time.sleep(0.05)
    return SandboxHandle(state_file, json.loads(state_file.read_text()), process)


def _start_telling(say: Callable[[str], None] | None) -> SandboxHandle:
    started = time.monotonic()
    if say:
        say("sandbox: starting on 127.0.0.1 (PostgreSQL primary and replica, Redis, AWS endpoint, API) ...")
    handle = start()
    if say:
        say(f"sandbox: ready in {time.monotonic() - started:.1f} s")
    return handle


SANDBOX_MODULES = ("moto", "aiohttp", "psycopg_pool")  # the sandbox extra of pyproject.toml
NOT_RUNNING_FIX = "start one with `entmoot-ops sandbox up`, or unset ENTMOOT_SANDBOX_STATE to let the run start its own"


def running(state_file: Path) -> SandboxHandle | None:
    """The sandbox a state file describes, if it answers; a state file whose sandbox is gone is removed."""
    try:
        handle = SandboxHandle(state_file, json.loads(state_file.read_text()))
        # Its process, not its control interface: a sandbox frozen on purpose (SIGSTOP) is still there.
        os.kill(handle.state["pids"]["supervisor"], 0)
    except ProcessLookupError:
        state_file.unlink(missing_ok=True)
        return None
    except (OSError, ValueError, KeyError):
        return None
    return handle


def attach(state_file: Path, *, what: str = "ENTMOOT_SANDBOX_STATE") -> SandboxHandle:
    if not state_file.is_file():
        raise ConfigError(f"{what}: {state_file} does not exist (no sandbox running there)", fix=NOT_RUNNING_FIX)
    handle = running(state_file)
    if handle is None:
        raise ConfigError(f"{what}: the sandbox of {state_file} is not running", fix=NOT_RUNNING_FIX)
    return handle


def attach_running() -> SandboxHandle:
    """The sandbox a person left running (ENTMOOT_SANDBOX_STATE, else ``sandbox up``'s); never starts one."""
    named = os.environ.get("ENTMOOT_SANDBOX_STATE")
    if named:
        return _exported(attach(Path(named)))
    handle = running(default_state_file())
    if handle is None:
        raise ConfigError("no sandbox is running", fix="start one with `entmoot-ops sandbox up`")
    return _exported(handle)


def _exported(handle: SandboxHandle) -> SandboxHandle:
    for secret in handle.state.get("secrets", []):
        masker.add(secret)
    os.environ.update(handle.env)
    return handle


def attach_or_start(say: Callable[[str], None] | None = None) -> SandboxHandle:
    """The sandbox for this process, exported as ENTMOOT_SANDBOX_* variables for the configuration to read:
    the one ENTMOOT_SANDBOX_STATE names, else the one ``sandbox up`` left running, else one of its own (``say``
    hears that it is starting, and when it is ready)."""
    named = os.environ.get("ENTMOOT_SANDBOX_STATE")
    key = Path(named) if named else Path("<own>")
    handle = _handles.get(key)
    if handle is None:
        if named:
            handle = attach(key)
        else:
            handle = running(default_state_file()) or _start_telling(say)
        _handles[key] = _exported(handle)
    handle.users += 1
    return handle
