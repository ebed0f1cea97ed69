"""Fixtures for the project's own tests: one sandbox per test session, and a runner for the checks.

The checks run as a real ``pytest checks/`` subprocess attached to the session's sandbox, exactly as an on-call
engineer or CI runs them; results are read back from the junit XML the suite writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from entmoot_ops import forkrun, iam
from entmoot_ops.config import load_environment
from entmoot_ops.sandbox.handle import SandboxHandle, start

ROOT = Path(__file__).resolve().parent.parent
# Every process the test session starts inherits this mark (the name avoids the ENTMOOT_ prefix that tests strip
# from a child's environment), so that the session's end finds whatever was left running.
SESSION_MARK = "OPS_TEST_SESSION"


def default_signals() -> None:
    """For a child whose test sends it a signal: SIGINT and SIGTERM as a terminal gives them, whatever this process
    inherited (a run under nohup, as a background job or by some CI runners ignores SIGINT, and so would the child)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# A test that runs the suite's checks against the sandbox (``pytest checks/ ...`` in a process of its own) is end to
# end, as is one that starts or drives a whole procedure: the quick tier (-m "not e2e") is the rest.
END_TO_END_FIXTURES = ("run_checks", "checks_runner")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(name in END_TO_END_FIXTURES for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


def pytest_configure(config: pytest.Config) -> None:
    # Registered here, not in pyproject.toml's markers: those are also what `pytest checks/ -m` accepts and lists as
    # checklists and components, and e2e is neither.
    config.addinivalue_line("markers", "e2e: a slow end-to-end test of a whole procedure; -m \"not e2e\" is the quick tier (docs/tests.md)")
    if not hasattr(config, "workerinput"):
        os.environ[SESSION_MARK] = uuid.uuid4().hex  # xdist's workers inherit it
        # Under PYTHONDONTWRITEBYTECODE (some shells and containers set it; tox does not pass it on), every process the
        # tests start (xdist's workers, sandboxes, hundreds of pytest runs and commands) compiled each module it
        # imports from source again: the whole run took 650-720 s on two cores instead of about 470. The bytecode goes
        # to a cache of the user's own instead (PYTHONPYCACHEPREFIX), not beside the sources in the checkout and the venv.
        if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
            cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
            os.environ.setdefault("PYTHONPYCACHEPREFIX", str(cache / "entmoot-ops" / "pycache"))
    # The tests judge a fault the moment they inject it: the sandboxes they start show datapoints at once.
    # CloudWatch's delay (on by default for users) has tests of its own (test_cloudwatch_delay.py).
    os.environ.setdefault("ENTMOOT_SANDBOX_CLOUDWATCH_DELAY", "0")
    # Nothing a test runs asks the instance metadata service (169.254.169.254), whatever the environment file says;
    # tests/test_credential_sources.py points it at a listener of its own to prove who would.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


def _left_running(mark: str, basetemp: str) -> dict[int, str]:
    """Processes of this test session still alive: they carry its mark, or name its temporary directory."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if _own_helper(int(entry), command):
            continue
        if _alive(int(entry)) and (f"{SESSION_MARK}={mark}".encode() in environ or basetemp.encode() in environ + command.encode()):
            found[int(entry)] = command
    return found


def _own_helper(pid: int, command: str) -> bool:
    """multiprocessing's fork server and resource tracker of this very process (entmoot_ops.forkrun's, in a run
    without xdist): they end when it does, after this hook."""
    try:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return False
    return parent == os.getpid() and "from multiprocessing." in command


def _stop(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a frozen process (SIGSTOP) cannot act on SIGTERM
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # a child of this very process stays a zombie until reaped
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.hookimpl(trylast=True)  # after xdist has stopped its workers and they their sandboxes
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Nothing a test started may outlive the session: a sandbox, a locust or a proxy left running serves traffic
    into the next run's measurements. Stop it, and fail the run that left it."""
    if hasattr(session.config, "workerinput"):
        return
    basetemp = str(session.config._tmp_path_factory.getbasetemp())
    left = _left_running(os.environ[SESSION_MARK], basetemp)
    # A worker's helpers (multiprocessing's fork server of entmoot_ops.forkrun) end when they see it gone: a moment
    # after it, not before this hook.
    deadline = time.monotonic() + 5
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {pid: command for pid, command in left.items() if _alive(pid)}
    if not left:
        return
    _stop(sorted(left))
    writer = session.config.get_terminal_writer()
    writer.line(f"FAILED the tests left {len(left)} process(es) running; stopped now:", red=True)
    for pid, command in sorted(left.items()):
        writer.line(f"  pid {pid}: {command[:200]}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@dataclass(frozen=True)
class Result:
    check_id: str
    nodeid: str
    outcome: str
    measured: str
    threshold: str
    remediation: str
    message: str
    seconds: float
    fix: str = ""
    junit: str = ""  # the junit element: failure (threshold breached) or error (could not measure)
    depends: tuple[str, ...] = ()
    touched: tuple[str, ...] = ()
    aws_actions: tuple[str, ...] = ()  # the IAM actions its measurements called


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float
    reports: Path
    results: list[Result] = field(default_factory=list)

    def outcome(self, check_id: str) -> str:
        outcomes = {r.outcome for r in self.results if r.check_id == check_id}
        assert len(outcomes) == 1, f"{check_id}: outcomes {outcomes}\n{self.output[-3000:]}"
        return outcomes.pop()

    def result(self, check_id: str) -> Result:
        return next(r for r in self.results if r.check_id == check_id)

    def by_outcome(self) -> dict[str, set[str]]:
        grouped: dict[str, set[str]] = {}
        for r in self.results:
            grouped.setdefault(r.outcome, set()).add(r.check_id)
        return grouped


def parse_junit(path: Path) -> list[Result]:
    results = []
    for case in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "check_id" not in props:
            continue
        check = json.loads(props["entmoot.check"])
        results.append(Result(props["check_id"], f"{case.get('classname')}::{case.get('name')}", props["outcome"],
                              props.get("measured", ""), props.get("threshold", ""), props.get("remediation", ""),
                              check["message"], float(case.get("time") or 0), check["fix"],
                              "failure" if case.find("failure") is not None else "error" if case.find("error") is not None else "",
                              tuple(check.get("depends", ())), tuple(check.get("touched", ())),
                              tuple(check.get("aws_actions", ()))))
    return results


@pytest.fixture(scope="session")
def sandbox() -> SandboxHandle:
    """The worker's sandbox, with IAM enforced as AWS does: every run of the suite in these tests signs as the user
    holding exactly its mode's generated policy (check, remediate, chaos or load)."""
    handle = start()
    handle.enforce_iam(iam.policies(load_environment("sandbox", ROOT / "environments")))
    yield handle
    handle.users = 1
    handle.release()


@pytest.fixture
def own_window(sandbox: SandboxHandle) -> None:
    """The API's last five minutes of traffic forgotten (ALB datapoints, CPU, log lines): a window the test then
    judges holds its own requests, whatever the tests before it on this worker's sandbox served."""
    sandbox.forget_traffic(300)


@pytest.fixture
def forgets_its_traffic(sandbox: SandboxHandle):
    """What a test's own load served (no fault's undo forgets it) is forgotten after the test: a later test on this
    worker's sandbox must not judge a window that holds it."""
    began = time.monotonic()
    yield
    sandbox.forget_traffic(time.monotonic() - began + 2)


@pytest.fixture(autouse=True)
def own_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own state directory, and so its own history (the default store is
    $XDG_STATE_HOME/entmoot-ops/history.sqlite3): what one test's runs remember is not what another's find changed."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    return state


@pytest.fixture
def run_checks(sandbox: SandboxHandle, tmp_path: Path):
    """Run ``pytest checks/ ARGS`` against the session's sandbox; return a :class:`Run`."""
    return checks_runner(sandbox, tmp_path)


def checks_runner(sandbox: SandboxHandle, tmp_path: Path):
    """``run(*ARGS)``: ``pytest checks/ ARGS`` against this sandbox, as a :class:`Run`."""
    counter = iter(range(1000))

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 240, charts: bool = False) -> Run:
        """``charts``: draw charts as the suite does by default (for the checks that did not pass). Off otherwise:
        a fault's run needs its verdict, and matplotlib's import and drawing cost CPU that CI's budget needs."""
        reports = tmp_path / f"reports-{next(counter)}"
        if not charts and not any(arg.startswith("--charts") for arg in args):
            args = (*args, "--charts", "none")
        environment = {**os.environ, "ENTMOOT_SANDBOX_STATE": str(sandbox.state_file), **(env or {})}
        for name in list(environment):
            if name.startswith("ENTMOOT_SANDBOX_") and name != "ENTMOOT_SANDBOX_STATE":
                del environment[name]  # the suite must get endpoints from the sandbox itself
        started = time.monotonic()
        # `python -m pytest checks/ ...`, forked with the third-party imports done (entmoot_ops.forkrun).
        returncode, output = forkrun.run_pytest(["checks/", "--reports-dir", str(reports), *args], env=environment, cwd=ROOT,
                                                timeout=timeout)
        junit = reports / "junit.xml"
        return Run(returncode, output, time.monotonic() - started, reports, parse_junit(junit) if junit.exists() else [])

    return run


@pytest.fixture
def environments(tmp_path: Path):
    """Write a variant of sandbox.toml (text substitutions) into its own environments dir; return the dir."""

    def variant(name: str = "sandbox", replace: dict[str, str] | None = None) -> Path:
        directory = tmp_path / f"environments-{name}"
        directory.mkdir(exist_ok=True)
        text = (ROOT / "environments" / "sandbox.toml").read_text()
        for old, new in (replace or {}).items():
            assert old in text, f"{old!r} not in sandbox.toml"
            text = text.replace(old, new)
        (directory / f"{name}.toml").write_text(text)
        return directory

    return variant


def settle(sandbox: SandboxHandle) -> None:
    """Make what happened visible to the checks: flush the API's metrics and run an agent tick, then wait for the
    CloudWatch period in progress to end, since a check judges only periods that have ended (as on AWS)."""
    sandbox.sync()
    period = load_environment("sandbox", ROOT / "environments").thresholds.metric_period_seconds
    time.sleep(period - time.time() % period + 0.05)


def api_traffic(sandbox: SandboxHandle, requests_count: int, path: str = "/api/projects/1") -> None:
    """Real requests through the sandbox API, then make its logs and metrics visible."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sandbox.env['ENTMOOT_SANDBOX_API_TOKEN']}"
    for _ in range(requests_count):
        session.get(sandbox.env["ENTMOOT_SANDBOX_API_URL"] + path, timeout=5)
    settle(sandbox)


@contextlib.contextmanager
def background_traffic(sandbox: SandboxHandle, path: str = "/api/projects/3", pause: float = 0.02):
    """Steady real traffic through the sandbox API while the block runs (as production has)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sandbox.env['ENTMOOT_SANDBOX_API_TOKEN']}"
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                session.get(sandbox.env["ENTMOOT_SANDBOX_API_URL"] + path, timeout=5)
            except requests.RequestException:
                pass
            time.sleep(pause)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        sandbox.sync()


def scale_command(sandbox: SandboxHandle, audit_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """``entmoot-ops scale ARGS`` against the session's sandbox, as an operator runs it."""
    environment = {"ENTMOOT_SANDBOX_STATE": str(sandbox.state_file), "PATH": "/usr/bin:/bin",
                   **{name: os.environ[name] for name in ("PYTHONPATH",) if name in os.environ}}  # the code under test
    return subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "scale", *args, "--audit-log", str(audit_dir / "audit.jsonl")],
                          cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)


@pytest.fixture
def sink(tmp_path, monkeypatch):
    """A loopback receiver of Slack's, PagerDuty's and a webhook's messages (tests/loopback_sink.py), trusted."""
    from loopback_sink import Sink

    server = Sink(tmp_path)
    for name, value in server.trust.items():
        monkeypatch.setenv(name, value)
    yield server
    server.close()
