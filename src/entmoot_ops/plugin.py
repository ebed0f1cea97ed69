"""The pytest plugin: environments, check metadata, outcomes, the remediation flow, summary and reports."""

from __future__ import annotations

import atexit
import contextlib
import difflib
import gc
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _pytest import junitxml

from entmoot_ops import iam, load, outcomes, preflight, progress, redaction, reports, scheduling
from entmoot_ops.breaker import fresh
from entmoot_ops.chaos import catalog
from entmoot_ops.chaos import guard as chaos_guard
from entmoot_ops.chaos.gameday import GameDay
from entmoot_ops.check import (CHECKLISTS, DEPENDENCIES, SEVERITIES, CheckRun, CheckSpec, attach_chart, best_effort, current_run,
                               evidence)
from entmoot_ops.clients import Clients, close_ssh_connections
from entmoot_ops.config import Environment, environments_dir, load_environment
from entmoot_ops.errors import ConfigError, OpsError, one_line
from entmoot_ops.remediation import REGISTRY, AuditLog, RemediationContext, describe_changes
from entmoot_ops.runbook import SECTIONS, link
from entmoot_ops.secrets import masker

RUN_KEY = pytest.StashKey[CheckRun]()
HELD_JUNIT_KEY = pytest.StashKey[Any]()
SESSION_KEY = pytest.StashKey[pytest.Session]()
PLAN_KEY = pytest.StashKey[list[str]]()
REMEDIATION_KEY = pytest.StashKey[str]()
ACTED_KEY = pytest.StashKey[tuple[list[str], str]]()  # what a remediation changed, and what the re-check found


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("entmoot", "Entmoot operations checks")
    group.addoption("--env", action="append", dest="entmoot_envs", metavar="NAME",
                    help="environment to check (repeatable); default $ENTMOOT_ENV or 'sandbox'")
    group.addoption("--environments-dir", dest="entmoot_envdir", metavar="DIR",
                    help="where NAME.toml files live (default $ENTMOOT_ENVIRONMENTS or ./environments)")
    group.addoption("--remediate", action="store_true", dest="entmoot_remediate",
                    help="execute the remediation of a failing check, then re-run the check")
    group.addoption("--yes", action="store_true", dest="entmoot_yes",
                    help="confirm an action on a production environment: remediation, or a load run")
    group.addoption("--load-shape", dest="entmoot_load_shape", default=None, choices=("baseline", "ramp", "spike", "soak"),
                    help="the load shape of -m load (default: load.shape of the environment)")
    group.addoption("--reports-dir", dest="entmoot_reports", default=None, metavar="DIR",
                    help="junit XML, Allure results and audit log go here (default ./reports when running checks/)")
    group.addoption("--audit-log", dest="entmoot_audit", default=None, metavar="FILE",
                    help="JSON-lines audit of remediation actions (default REPORTS/audit.jsonl)")
    group.addoption("--check", action="append", dest="entmoot_checks", metavar="ID", default=[],
                    help="run only this check (repeatable; with -m and -k, all must select it)")
    group.addoption("--gameday", dest="entmoot_gameday", default=None, metavar="A,B,...",
                    help="a game day (with -m chaos): these experiments in this order, a pause between two, one report "
                         "of them all in REPORTS/gameday/ and in Allure (entmoot-ops chaos gameday runs it)")
    group.addoption("--gameday-pause", dest="entmoot_gameday_pause", default=10.0, type=float, metavar="SECONDS",
                    help="the pause between two experiments of a game day (default 10); each also waits for its "
                         "steady state, up to its recovery deadline")
    group.addoption("--charts", dest="entmoot_charts", default="failures", choices=("failures", "all", "none"),
                    help="which checks draw their time series into the report: those that do not pass (default), all, or none")
    group.addoption("--evidence", dest="entmoot_evidence", default=None, choices=("failures", "all"),
                    help="which checks read their evidence (logs, top statements): only those that do not pass "
                         "(default), or all; default: the environment's `evidence` setting")
    group.addoption("--expected-version", dest="entmoot_expected_version", default=None, metavar="VERSION",
                    help="the version the deploy gate (-m deploy) expects /health and the PRIMARY image to carry")
    group.addoption("--no-export", action="store_false", dest="entmoot_export",
                    help="tell no notification channel ([notify]) and export no metrics ([metrics]); a chaos experiment's "
                         "observations run so: their red checks are the experiment's instrument, its own verdict is what "
                         "is told and exported")


@dataclass
class Suite:
    """Run-wide state: the environments selected and their loaded configuration."""

    environments: dict[str, Environment]
    remediate: bool
    mode: iam.Mode  # which least-privilege policy this run needs (entmoot-ops iam-policy MODE)
    confirmed: bool
    reports_dir: Path | None
    audit: AuditLog
    started: bool  # checks are running: results were emptied, the junit file will be written
    preflights: dict[str, preflight.Preflight] = field(default_factory=dict)
    asked: dict = field(default_factory=dict)  # the preflights' AWS answers, shared by environments asking alike
    sandboxes: list[Any] = field(default_factory=list)  # handles this process holds, released at the end
    # Under xdist the controller runs the preflight once the workers' selection is known, after they started: it
    # hands its result over through this file, written before any check is sent to a worker.
    handoff: Path | None = None
    refusal: str | None = None  # a usage error found only once xdist's workers had collected
    refused: bool = False  # the selection was refused: nothing may start, nothing of the last run be emptied
    running: str | None = None  # the check that runs now: the one Ctrl-C stops
    gameday: GameDay | None = None
    ssh_warmups: dict[str, threading.Thread] = field(default_factory=dict)  # by control path
    began: float = field(default_factory=time.monotonic)


SUITE_KEY = pytest.StashKey[Suite]()


def _runs_checks(config: pytest.Config) -> bool:
    checks_dir = (config.rootpath / "checks").resolve()
    for arg in config.args or [str(config.invocation_params.dir)]:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if path == checks_dir or checks_dir in path.parents:
            return True
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    names = config.getoption("entmoot_envs") or [os.environ.get("ENTMOOT_ENV") or "sandbox"]
    directory = Path(config.getoption("entmoot_envdir") or environments_dir())
    try:
        environments = {name: load_environment(name, directory) for name in dict.fromkeys(names)}
        redaction.adopt(environment.redaction for environment in environments.values())
        # checks/test_chaos.py makes a check of each file; one that is wrong is refused only by a run selecting it
        catalog.select(config.rootpath, environments.values(), strict=False)
    except ConfigError as exc:
        raise pytest.UsageError(masker(str(exc))) from None
    selects_load, selects_chaos = _selects(config, "load"), _selects(config, "chaos")
    if config.getoption("entmoot_yes") and not (config.getoption("entmoot_remediate") or selects_load or selects_chaos):
        raise pytest.UsageError("--yes confirms an action: it needs --remediate, a load run (-m load) or chaos (-m chaos)")
    # Load and chaos are actions: refused before anything runs (the preflight included), in one line, where not allowed.
    for environment in environments.values():
        if selects_load:
            _refuse_unless_allowed(load.refuse_unless_allowed, environment, confirmed=config.getoption("entmoot_yes"))
        if selects_chaos:
            _refuse_unless_allowed(chaos_guard.refuse_unless_allowed, environment, confirmed=config.getoption("entmoot_yes"))

    # The gate's version is asked for here, before xdist starts its workers, where -m or --check selects the gate; a
    # selection by -k is refused once collected.
    gate = _selects(config, "deploy") or any(c.startswith("deploy.") for c in config.getoption("entmoot_checks"))
    if gate and not config.getoption("entmoot_expected_version"):
        raise pytest.UsageError("the deploy gate needs --expected-version (the version /health and the PRIMARY image must carry)")
    gameday = _gameday(config, selects_chaos, list(environments))
    reports_option = config.getoption("entmoot_reports")
    reports_dir = Path(reports_option) if reports_option else (Path("reports") if _runs_checks(config) else None)
    if _runs_checks(config):
        _register_components(config)
    if reports_dir is not None and not hasattr(config, "workerinput"):
        _refuse_unknown_selection(config)
        if not config.option.xmlpath:
            config.option.xmlpath = str(reports_dir / "junit.xml")
        if getattr(config.option, "allure_report_dir", None) is None:
            # Each run's results alone: a report must not mix runs or environments. They are emptied once checks
            # really start (_start_results), not before: a typo must not destroy the last run's evidence.
            config.option.allure_report_dir = str(reports_dir / "allure-results")
    audit_path = config.getoption("entmoot_audit") or str((reports_dir or Path("reports")) / "audit.jsonl")
    suite = Suite(
        started=hasattr(config, "workerinput"),
        environments=environments,
        remediate=config.getoption("entmoot_remediate"),
        mode="chaos" if selects_chaos else "load" if selects_load else "remediate" if config.getoption("entmoot_remediate") else "check",
        confirmed=config.getoption("entmoot_yes"),
        reports_dir=reports_dir,
        audit=AuditLog(Path(audit_path)),
        gameday=gameday,
    )
    config.stash[SUITE_KEY] = suite
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "entmoot_preflight" in workerinput:
        suite.handoff = Path(workerinput["entmoot_preflight"])
    progress.write = lambda line: _say(config, line)
    config.pluginmanager.register(reports.AllureVerdicts(), "entmoot-allure-verdicts")


def _gameday(config: pytest.Config, selects_chaos: bool, environments: list[str]) -> GameDay | None:
    """A game day's experiments become the run's selection (--check), in the order given."""
    given = config.getoption("entmoot_gameday")
    if given is None:
        return None
    order = tuple(dict.fromkeys(name.strip() for name in given.split(",") if name.strip()))
    if not order or not selects_chaos:
        raise pytest.UsageError("--gameday names the experiments of a chaos run: -m chaos --gameday a,b")
    if getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("a game day runs its experiments one after the other: drop -n")
    if len(environments) > 1:  # its report is one environment's: several would mix their journals in one
        raise pytest.UsageError(f"a game day is against one environment, not {len(environments)} ({', '.join(environments)}): "
                                "give one --env")
    config.option.entmoot_checks = [*config.getoption("entmoot_checks"), *(f"chaos.{name}" for name in order)]
    return GameDay(order, max(0.0, config.getoption("entmoot_gameday_pause")))


def _refuse_unless_allowed(refuse: Any, environment: Environment, **given: Any) -> None:
    try:
        refuse(environment, **given)
    except ConfigError as exc:
        raise pytest.UsageError(f"{exc} ({exc.fix})") from None


def _selects(config: pytest.Config, marker: str) -> bool:
    """Whether -m selects a marker's checks, by pytest's own -m grammar ("load", "load and not x", not "not load").
    An expression that holds without the marker ("not e2e", "not redis") does not ask for it: whatever of its checks
    it lets through is refused once collected, as a selection by -k is."""
    expression = config.option.markexpr
    if not expression:
        return False
    try:
        from _pytest.mark.expression import Expression
    except ImportError:  # pytest moved its private grammar: judge by the word
        return marker in expression.split()
    compiled = Expression.compile(expression)
    return compiled.evaluate(lambda name, **_: name == marker) and not compiled.evaluate(lambda name, **_: False)


def _say(config: pytest.Config, line: str) -> None:
    """A line on the terminal now, even while a check runs and pytest captures its output."""
    if hasattr(config, "workerinput"):  # an xdist worker has no terminal of its own; its stderr is the controller's
        print(masker(line), file=sys.__stderr__, flush=True)
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line(masker(line))
        else:
            print(masker(line), file=sys.__stderr__, flush=True)


def _preflight(suite: Suite, name: str, say: Any = None) -> preflight.Preflight:
    """Start or attach the sandbox of a sandbox environment, then resolve the environment's references."""
    environment = suite.environments[name]
    if environment.kind == "sandbox":
        from entmoot_ops.sandbox.handle import attach_or_start

        try:
            handle = attach_or_start(say)
            suite.sandboxes.append(handle)
            # What this run starts (xdist workers, a chaos experiment's observations) uses the same sandbox.
            os.environ["ENTMOOT_SANDBOX_STATE"] = str(handle.state_file)
            handle.sign_as(suite.mode)
        except OpsError as exc:
            problem = preflight.Problem("sandbox", masker(str(exc)), exc.fix)
            return preflight.Preflight(name, fatal=problem)
    return preflight.run(environment, remediate=suite.remediate, mode=suite.mode, asked=suite.asked)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """The junit file is held back until checks really start, and the preflight waits for the selection: it
    starts a sandbox, which a selection of nothing must not cost."""
    config = session.config
    config.stash[SESSION_KEY] = session  # its exit status is final when pytest_unconfigure runs
    if hasattr(config, "workerinput") or config.option.collectonly or not _runs_checks(config):
        return
    logxml = config.stash.get(junitxml.xml_key, None)
    if logxml is not None:
        config.pluginmanager.unregister(logxml)
        del config.stash[junitxml.xml_key]  # junitxml's unconfigure unregisters what it finds there
        config.stash[HELD_JUNIT_KEY] = logxml
    if _distributed(config):
        # The preflight holds resolved secrets: mkdtemp's directory is the user's alone (0700), removed at the end.
        config.stash[SUITE_KEY].handoff = Path(tempfile.mkdtemp(prefix="entmoot-ops-")) / "preflight.json"


def _distributed(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "numprocesses", None)) and config.pluginmanager.hasplugin("dsession")


def _run_preflights(config: pytest.Config) -> None:
    suite = config.stash[SUITE_KEY]
    for name in suite.environments:
        if name not in suite.preflights:
            suite.preflights[name] = _preflight(suite, name, say=lambda line: _say(config, line))
            _say(config, suite.preflights[name].line())


def _start_results(config: pytest.Config) -> None:
    """Checks are about to run: empty the last run's Allure results, and let the junit file be written."""
    suite = config.stash[SUITE_KEY]
    if suite.started:
        return
    suite.started = True
    results = getattr(config.option, "allure_report_dir", None)
    if results and suite.reports_dir is not None:
        shutil.rmtree(results, ignore_errors=True)
        Path(results).mkdir(parents=True, exist_ok=True)
    logxml = config.stash.get(HELD_JUNIT_KEY, None)
    if logxml is not None:
        config.pluginmanager.register(logxml)
        config.stash[junitxml.xml_key] = logxml
        logxml.pytest_sessionstart()


@pytest.hookimpl(wrapper=True, specname="pytest_collection_modifyitems")
def pytest_refusal_keeps_the_last_run(config: pytest.Config, items: list[pytest.Item]) -> Any:
    """pytest calls pytest_collection_finish even when the selection was refused (its own usage errors and ours):
    a refused run must not empty the last run's results nor start a sandbox, and an xdist worker must not hand the
    controller a selection to schedule."""
    try:
        return (yield)
    except BaseException as exc:
        config.stash[SUITE_KEY].refused = True
        items[:] = []
        workeroutput = getattr(config, "workeroutput", None)
        if workeroutput is not None and isinstance(exc, pytest.UsageError):  # the controller says it (pytest_testnodedown)
            workeroutput["entmoot_refusal"] = str(exc)
        raise


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A worker refused the selection it collected: its words, not the controller's guess from an empty selection."""
    refusal = getattr(node, "workeroutput", {}).get("entmoot_refusal")
    if refusal:
        node.config.stash[SUITE_KEY].refusal = refusal


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if config.option.collectonly or not _runs_checks(config) or config.stash[SUITE_KEY].refused:
        return
    # What a check run has built by now (modules, botocore's service models, pydantic's validators, the items) lives
    # until it ends: frozen, it is not walked again by each full garbage collection, a tenth of a long run's CPU.
    gc.freeze()
    if hasattr(config, "workerinput") or not session.items:
        return
    _start_results(config)
    _run_preflights(config)
    _open_ssh_connections(config, session.items)


def oncall_urls(config: pytest.Config, env: Environment) -> tuple[str, ...]:
    """The on-call hosts: testinfra's own ``--hosts`` when given (one run checks several bastions), else
    ``[hosts] oncall``."""
    given = tuple(url.strip() for url in (config.getoption("hosts", None) or "").split(",") if url.strip())
    return given or env.hosts.oncall


def _open_ssh_connections(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An SSH connection costs a handshake (a tenth of a second on loopback, round trips more to a bastion): opened
    on a side thread while the first checks run, the host checks find it ready (ssh's ControlMaster)."""
    suite = config.stash[SUITE_KEY]
    opened = suite.ssh_warmups  # environments that reach a host the same way share its connection: one handshake
    for name in dict.fromkeys(_env_name(item) for item in items if "oncall" in getattr(item, "fixturenames", ())):
        clients = Clients(suite.environments[name], preflight=suite.preflights[name])
        for url in oncall_urls(config, clients.env):
            with contextlib.suppress(OpsError):  # an unresolved ssh_config: the check that needs it says so
                host = clients.host(url) if url.startswith("ssh://") else None
                if host is not None and host.backend.controlpath not in opened:
                    opened[host.backend.controlpath] = threading.Thread(target=_open_ssh, args=(host,), name=f"ssh {url}", daemon=True)
                    opened[host.backend.controlpath].start()


def _open_ssh(host: Any) -> None:
    with contextlib.suppress(Exception):  # a warm-up only: the check that needs the host says what is wrong with it
        host.run("true")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """The first worker's selection is known: refuse an empty one, else run the preflight and hand it over
    before xdist sends the first check (it schedules after this hook returns)."""
    config = node.config
    suite = config.stash[SUITE_KEY]
    if config.option.collectonly or not _runs_checks(config) or suite.handoff is None or suite.handoff.exists():
        return
    if not ids:
        try:
            _refuse_empty_selection(config, [])
        except pytest.UsageError as exc:
            suite.refusal = str(exc)  # said as pytest says a usage error, when the session ends
        return
    _start_results(config)
    _run_preflights(config)
    handed = {"preflights": {name: p.to_json() for name, p in suite.preflights.items()},
              "sandbox_state": os.environ.get("ENTMOOT_SANDBOX_STATE")}
    suite.handoff.write_text(json.dumps(handed), encoding="utf-8")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    return scheduling.scheduler(config, log, list(config.stash[SUITE_KEY].environments))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    suite = node.config.stash[SUITE_KEY]
    if suite.handoff is not None:
        node.workerinput["entmoot_preflight"] = str(suite.handoff)


def _handed_over(suite: Suite) -> None:
    """A worker takes the controller's preflight (and the sandbox it attached to) instead of running its own."""
    handed = json.loads(suite.handoff.read_text(encoding="utf-8"))
    if handed["sandbox_state"]:
        os.environ["ENTMOOT_SANDBOX_STATE"] = handed["sandbox_state"]
    suite.preflights.update({name: preflight.Preflight.from_json(data) for name, data in handed["preflights"].items()})


def _resources(env: Environment, fixture: str) -> list[str]:
    """The resources a per-resource check runs once for, by the fixture it asks for."""
    postgres = env.postgres
    if fixture == "replica":
        return [r.name for r in postgres.replicas]
    if postgres.replica_lag_source == "cloudwatch":
        return [f"cloudwatch:{i}" for i in postgres.replica_instances]
    return [f"postgres:{r.name}" for r in postgres.replicas]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    suite = metafunc.config.stash[SUITE_KEY]
    fixture = next((f for f in ("replica", "lag_target") if f in metafunc.fixturenames), None)
    if fixture:
        params = []
        for name, env in suite.environments.items():
            resources = _resources(env, fixture)
            params += [pytest.param(name, r, id=f"{name}-{r.split(':')[-1]}") for r in resources]
            if not resources:  # said once, as a skip; an empty parameter set would be pytest's NOTSET
                reason = (f"no {'replica' if fixture == 'replica' else 'replica lag source'} configured in {name} "
                          f"(postgres.replicas{'' if fixture == 'replica' else ' / postgres.replica_instances'} is empty)")
                params.append(pytest.param(name, None, id=f"{name}-none", marks=pytest.mark.skip(reason=reason)))
        metafunc.parametrize(("env", fixture), params, indirect=True)
    elif "env" in metafunc.fixturenames:
        metafunc.parametrize("env", list(suite.environments), indirect=True, ids=list(suite.environments))


def spec_of(item: pytest.Item) -> CheckSpec | None:
    marker = item.get_closest_marker("check")
    return CheckSpec(**marker.kwargs) if marker else None


def _validate(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("check")
    try:
        spec = CheckSpec(**marker.kwargs)
    except TypeError as exc:
        return f"bad check metadata: {exc}"
    if spec.severity not in SEVERITIES:
        return f"severity {spec.severity!r} is not one of {', '.join(SEVERITIES)}"
    if spec.section not in SECTIONS:
        return f"runbook section {spec.section!r} is unknown"
    if not spec.depends or not set(spec.depends) <= DEPENDENCIES.keys():
        return f"depends {spec.depends!r}: name what it depends on, from {', '.join(DEPENDENCIES)}"
    if spec.remediation not in REGISTRY:
        return f"remediation {spec.remediation!r} is not registered"
    if not any(item.get_closest_marker(name) for name in CHECKLISTS):
        return f"no checklist marker (one of {', '.join(CHECKLISTS)})"
    return None


@dataclass
class Target:
    """What a check receives as ``env``: the configuration and read-only clients of one environment."""

    config: Environment
    clients: Clients

    def __repr__(self) -> str:  # pytest prints check arguments in failures: keep it to the name
        return f"<environment {self.config.name}>"

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def thresholds(self):  # noqa: ANN201 - the pydantic model
        return self.config.thresholds


@pytest.fixture(scope="session")
def env(request: pytest.FixtureRequest) -> Any:
    suite = request.config.stash[SUITE_KEY]
    name = request.param
    if name not in suite.preflights and suite.handoff is not None and suite.handoff.exists():
        _handed_over(suite)
    if name not in suite.preflights:  # checks run from a path pytest_sessionstart did not recognise
        suite.preflights[name] = _preflight(suite, name)
    clients = Clients(suite.environments[name], preflight=suite.preflights[name])
    request.addfinalizer(clients.close)
    return Target(suite.environments[name], clients)


@pytest.fixture
def oncall(request: pytest.FixtureRequest, env: Target) -> list[Any]:
    """The on-call hosts as testinfra hosts (see :func:`oncall_urls`), their connections opened: a command sent while
    the warm-up still connects would open a second one beside it."""
    found = [env.clients.host(url) for url in oncall_urls(request.config, env.config)]
    warmups = request.config.stash[SUITE_KEY].ssh_warmups
    for host in found:
        if getattr(host.backend, "controlpath", None) in warmups:
            warmups[host.backend.controlpath].join()  # bounded by ssh's ConnectTimeout and keep-alives
    return found


@pytest.fixture
def replica(request: pytest.FixtureRequest, env: Target) -> Any:
    return next(r for r in env.config.postgres.replicas if r.name == request.param)


@pytest.fixture(scope="session")
def reports_dir(request: pytest.FixtureRequest) -> Path:
    """Where this run's reports go: what a check run leaves beside junit and Allure (locust's files, say)."""
    return request.config.stash[SUITE_KEY].reports_dir or Path("reports")


@pytest.fixture(scope="session")
def gameday(request: pytest.FixtureRequest) -> GameDay | None:
    """The game day this run is (--gameday), else None: its chaos checks pause between them and hand their journals."""
    return request.config.stash[SUITE_KEY].gameday


@pytest.fixture(scope="session")
def audit_log(request: pytest.FixtureRequest) -> AuditLog:
    """Where every action of this run is written: remediations, chaos experiments."""
    return request.config.stash[SUITE_KEY].audit


@pytest.fixture(scope="session")
def expected_version(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("entmoot_expected_version")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """After pytest's own selection (-m, -k): its usage errors, such as an unknown marker, come first. A check
    of the deploy gate that is still selected needs the version it verifies."""
    _select_checks(config, items)
    gameday = config.stash[SUITE_KEY].gameday
    if gameday is not None:
        rank = {f"chaos.{name}": index for index, name in enumerate(gameday.order)}
        items.sort(key=lambda item: rank.get(_check_id(item), len(rank)))  # a --check besides them comes after
    _refuse_empty_selection(config, items)
    needs = [item.nodeid for item in items if "expected_version" in getattr(item, "fixturenames", ())]
    if needs and not config.getoption("entmoot_expected_version") and not config.option.collectonly:
        raise pytest.UsageError(f"the deploy gate needs --expected-version (selected: {needs[0]} and {len(needs) - 1} more)")
    suite = config.stash[SUITE_KEY]
    # Load checks selected otherwise than by -m (-k, node ids): refused here, before any runs.
    for fixture, refuse in (("load_run", load.refuse_unless_allowed), ("chaos_runner", chaos_guard.refuse_unless_allowed)):
        for name in dict.fromkeys(_env_name(item) for item in items if fixture in getattr(item, "fixturenames", ())):
            _refuse_unless_allowed(refuse, suite.environments[name], confirmed=suite.confirmed)
    _refuse_selected_experiments(config, items)
    _validate_metadata(config, items)
    for item in items:
        if spec_of(item) is not None:
            _renders_verdicts(item)


def _refuse_selected_experiments(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An experiment file the run selects must be valid, and an experiment asked for by name (--check) allowed
    where it runs (those that -m chaos alone selects are skipped, with the reason, where not allowed)."""
    broken, known = catalog.broken(config.rootpath), catalog.experiments(config.rootpath)
    asked = set(config.getoption("entmoot_checks"))
    suite = config.stash[SUITE_KEY]
    for item in items:
        check_id = _check_id(item)
        if not check_id.startswith("chaos."):
            continue
        name = check_id.removeprefix("chaos.")
        if name in broken:
            raise pytest.UsageError(f"{broken[name]} (correct the file: `entmoot-ops chaos validate` checks them all)")
        if check_id in asked:
            _refuse_unless_allowed(chaos_guard.refuse_unless_allowed, suite.environments[_env_name(item)],
                                   confirmed=suite.confirmed, experiment=known[name])


def _declared_check_ids(config: pytest.Config) -> list[str]:
    """The ids the checks declare, read from their source without collecting anything; the chaos checks are one
    per experiment file (checks/test_chaos.py)."""
    found = [f"chaos.{name}" for name in [*catalog.experiments(config.rootpath), *catalog.broken(config.rootpath)]]
    for path in sorted((config.rootpath / "checks").glob("test_*.py")):
        found += CHECK_ID.findall(path.read_text(encoding="utf-8"))
    return sorted(set(found))


TEST_NAME = re.compile(r"^def test_(\w+)", re.M)
CHECK_ID = re.compile(r"""@check\(\s*id=["']([^"']+)["']""")


def _closest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _refuse_unknown_selection(config: pytest.Config) -> None:
    """A typo in -m or --check is refused before anything starts, deletes or connects, with the closest names."""
    markers = sorted({line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")})
    unknown = _unknown_checklist(config.option.markexpr or "", markers)
    if unknown:
        raise pytest.UsageError(f"-m: {unknown}")
    known = _declared_check_ids(config)
    for wanted in config.getoption("entmoot_checks"):
        if wanted not in known:
            raise pytest.UsageError(f"--check: no check {wanted!r}{_closest(wanted, known)} (`pytest checks/ --collect-only -q` lists the checks)")
    # An experiment file naming a check or checklist that does not exist would only show as a detection never made.
    for experiment in catalog.experiments(config.rootpath).values() if _selects(config, "chaos") else ():
        unknown = _unknown_checklist(experiment.steady_state, markers)
        if unknown:
            raise pytest.UsageError(f"{experiment.path}: steady_state: {unknown}")
        for key, named in (("detectors", experiment.detectors), ("also", experiment.also)):
            for index, check_id in enumerate(named):
                if check_id not in known:
                    raise pytest.UsageError(f"{experiment.path}: {key}.{index}: no check {check_id!r}{_closest(check_id, known)}")


def _unknown_checklist(expression: str, markers: list[str]) -> str | None:
    for word in re.findall(r"[A-Za-z_][\w-]*", expression):
        if word not in ("and", "or", "not") and word not in markers:
            components = sorted(set(markers) - set(CHECKLISTS) - {"check"})
            return (f"no checklist or component {word!r}{_closest(word, markers)}; checklists: {', '.join(CHECKLISTS)}; "
                    f"components: {', '.join(components)}")
    return None


def _component(check_id: str) -> str:
    """The first part of a check's id (``redis`` of ``redis.memory``): a marker of its own, so that pytest's -m
    language selects by component as by checklist (``-m "morning and not redis"``)."""
    return check_id.split(".", 1)[0]


def _components(config: pytest.Config) -> list[str]:
    return sorted({_component(check_id) for check_id in _declared_check_ids(config)})


def _register_components(config: pytest.Config) -> None:
    registered = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for component in _components(config):
        if component not in registered:
            config.addinivalue_line("markers", f"{component}: the {component}.* checks (a component)")


def pytest_itemcollected(item: pytest.Item) -> None:
    check_id = _check_id(item)
    if check_id:
        item.add_marker(_component(check_id))


def _refuse_empty_selection(config: pytest.Config, items: list[pytest.Item]) -> None:
    keyword = config.option.keyword
    # Under xdist the controller judges what its workers selected (pytest_xdist_node_collection_finished).
    if items or not keyword or not _runs_checks(config) or hasattr(config, "workerinput"):
        return
    # What -k matches: the checks' function and file names.
    names = sorted({name for path in (config.rootpath / "checks").glob("test_*.py")
                    for name in [path.stem.removeprefix("test_"), *TEST_NAME.findall(path.read_text(encoding="utf-8"))]})
    hint = next((h for w in re.findall(r"[A-Za-z_][\w.-]*", keyword) if w not in ("and", "or", "not") and (h := _closest(w, names))), "")
    raise pytest.UsageError(f"-k {keyword!r} selects no check{hint}: nothing was started or verified")


def _check_id(item: pytest.Item) -> str:
    marker = item.get_closest_marker("check")
    return marker.kwargs.get("id", "") if marker else ""


def _select_checks(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = set(config.getoption("entmoot_checks"))
    if not wanted:
        return
    known = {_check_id(item) for item in items}
    if wanted - known:
        raise pytest.UsageError(f"--check: no check {', '.join(sorted(wanted - known))} among the selected checks")
    keep = [item for item in items if _check_id(item) in wanted]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


def _validate_metadata(config: pytest.Config, items: list[pytest.Item]) -> None:
    checks_dir = config.rootpath / "checks"
    problems = []
    for item in items:
        in_checks = checks_dir in Path(item.path).parents
        if item.get_closest_marker("check") is None:
            if in_checks:
                problems.append(f"{item.nodeid}: not declared with entmoot_ops.check.check(...)")
            continue
        problem = _validate(item)
        if problem:
            problems.append(f"{item.nodeid}: {problem}")
    if problems:
        raise pytest.UsageError("invalid check metadata:\n  " + "\n  ".join(dict.fromkeys(problems)))




@pytest.fixture
def lag_target(request: pytest.FixtureRequest) -> tuple[str, str]:
    source, name = request.param.split(":", 1)
    return source, name


def _env_name(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("env", "?") if callspec else "?"


def _recheck(item: pytest.Item, run: CheckRun, deadline: float, interval: float) -> tuple[bool, str]:
    """Run the check body again until it passes or the deadline passes; the last failure is returned."""
    last = ""
    check_progress = progress.Progress(f"verifying {run.spec.id} after the remediation (deadline "
                                       f"{deadline - time.monotonic():.0f} s)")
    while True:
        run.readings.clear()
        try:
            with fresh():  # after a fix, nothing remembered from before it counts: readings and open circuits
                item.runtest()
            return True, ""
        except AssertionError as exc:
            last = str(exc)
        except pytest.skip.Exception as exc:  # cannot judge yet (e.g. no traffic since the fix): keep polling
            last = f"not judged yet: {exc.msg}"
        except OpsError as exc:  # a dependency flapping while the fix settles: keep polling until the deadline
            last = f"could not measure: {exc}"
        if time.monotonic() + interval > deadline:
            return False, last
        check_progress(last)
        time.sleep(interval)


def rerun_command(config: pytest.Config, check_id: str, env: str) -> str:
    """The command that runs this one check again, as this run ran it (its environments' directory, the gate's version)."""
    component = _component(check_id)
    # A load run or an experiment is an action of its own mode (its IAM policy, its confirmation): -m names it.
    command = ["pytest", "checks/", *(("-m", component) if component in ("load", "chaos") else ()), "--check", check_id, "--env", env]
    for option, flag in (("entmoot_envdir", "--environments-dir"), ("entmoot_expected_version", "--expected-version")):
        if config.getoption(option):
            command += [flag, config.getoption(option)]
    return shlex.join(command)


class Fixed(AssertionError):
    """A check that failed and passed again after its remediation acted. It stays a failure: something was wrong,
    and a gate that rolled a release back has not verified that release."""


class NotFixed(AssertionError):
    """A check that still fails after its remediation acted: what was done comes first, since it is done (a
    rollback is not a plan any more), then why the check is still not passing."""


def _remediate(item: pytest.Item, run: CheckRun, failure: AssertionError) -> AssertionError | None:
    """Plan (always) and, on --remediate, act and verify. What it changed, with the readings before and after: as
    :class:`Fixed` or :class:`NotFixed`; None when it did not act (its plan is then what a person carries out)."""
    suite = item.config.stash[SUITE_KEY]
    target: Target = item.funcargs["env"]
    remediation = REGISTRY[run.spec.remediation]
    writable = Clients(target.config, writable=True, preflight=target.clients.preflight)
    context = RemediationContext(env=target.config, readonly=target.clients, writable=writable,
                                 check_id=run.spec.id, failure=str(failure))
    try:
        with fresh():
            plan = remediation.plan(context)
    except OpsError as exc:
        plan = [f"(could not prepare the plan: {exc})"]
    plan.append(f"re-run: {rerun_command(item.config, run.spec.id, target.name)}")

    def planned(state: str) -> None:
        item.stash[REMEDIATION_KEY] = state
        item.stash[PLAN_KEY] = plan
        reports.attach_plan(remediation, plan)

    if not suite.remediate:
        return planned("planned")
    audit = dict(env=target.name, check_id=run.spec.id, remediation_id=remediation.id)
    if remediation.act is None:
        return planned("manual")
    if target.config.production and not suite.confirmed:
        suite.audit.write(event="refused", reason="production environment without --yes", plan=plan, **audit)
        return planned("refused: production needs --yes")
    try:
        with fresh():
            changes = remediation.act(context)
    except OpsError as exc:
        suite.audit.write(event="action-failed", error=str(exc), plan=plan, **audit)
        return planned(f"action failed: {exc.with_fix()}")
    finally:
        context.writable.close()
    suite.audit.write(event="acted", changes=describe_changes(changes), failure=str(failure), **audit)
    reports.attach_changes(changes)
    settings = target.config.remediation
    fixed, last = _recheck(item, run, time.monotonic() + settings.verify_timeout_seconds, settings.verify_interval_seconds)
    suite.audit.write(event="verified" if fixed else "not-fixed", recheck=last or "passed", **audit)
    done = [change.describe() for change in changes] or ["acted"]
    recheck = ("; ".join(r.describe() for r in run.readings) or "passed") if fixed else _unremediated(last)
    item.stash[REMEDIATION_KEY] = "fixed" if fixed else "acted, not fixed"
    item.stash[ACTED_KEY] = (done, recheck)
    before = _unremediated(str(failure))
    if fixed:
        return Fixed(f"fixed by {remediation.id} ({'; '.join(done)}); before: {before}; after: {recheck}")
    return NotFixed(f"not fixed by {remediation.id} ({'; '.join(done)}): after it, {recheck}; before: {before}")


def _unremediated(verdict: str) -> str:
    """A failure's verdict without its "-> remediation" pointer: inside a remediation's own account it says nothing."""
    return verdict.split(" -> remediation")[0]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    spec = spec_of(item)
    if spec is None:
        return (yield)
    run = CheckRun(spec=spec, env=_env_name(item))
    item.stash[RUN_KEY] = run
    token = current_run.set(run)
    reports.label(item, spec, item.config.stash[SUITE_KEY].environments.get(run.env))
    try:
        outcome = yield
    except AssertionError as failure:
        _read_evidence(run, wanted=True)
        _draw_charts(run, wanted=_charts(item) != "none")
        acted = _remediate(item, run, failure)
        if acted is not None:
            raise acted from None
        raise
    except BaseException:
        skipped = isinstance(sys.exc_info()[1], pytest.skip.Exception)
        _read_evidence(run, wanted=not skipped or _all_evidence(item))
        _draw_charts(run, wanted=_charts(item) == "all" or (_charts(item) == "failures" and not skipped))
        raise
    else:
        _read_evidence(run, wanted=_all_evidence(item))
        _draw_charts(run, wanted=_charts(item) == "all")
        return outcome
    finally:
        current_run.reset(token)


def _all_evidence(item: pytest.Item) -> bool:
    chosen = item.config.getoption("entmoot_evidence")
    environment = item.config.stash[SUITE_KEY].environments.get(_env_name(item))
    return (chosen or (environment.evidence if environment else "failures")) == "all"


def _charts(item: pytest.Item) -> str:
    return item.config.getoption("entmoot_charts")


def _draw_charts(run: CheckRun, *, wanted: bool) -> None:
    from entmoot_ops import charts

    drawn, run.charts = run.charts, []
    for title, read in drawn if wanted else ():
        attach_chart(title, lambda read=read: charts.series(read()))


def _read_evidence(run: CheckRun, *, wanted: bool) -> None:
    """The evidence reads a check deferred: done for a check that did not pass (or on --evidence all), each best
    effort. Whatever they meet, the verdict is the check's own."""
    reads, run.deferred = run.deferred, []
    for name, read in reads if wanted else ():
        evidence(name, best_effort(name, read))


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report = yield
    spec = spec_of(item)
    if spec is None:
        return report
    error = call.excinfo.value if call.excinfo is not None else None
    if report.when == "call" and report.failed and not isinstance(error, AssertionError):
        # Could not measure is not a breached threshold: pytest counts a failure outside the call phase as an
        # error, in its progress, its closing line and junit (<error>, not <failure>).
        report.when = "setup"
    if error is not None and (verdict := _verdict(item, error)) is not None:
        report.longrepr = verdict  # a failure in set-up (a fixture's) is not rendered by repr_failure
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        report.longrepr = masker(str(report.longrepr))
    report.sections = [(title, masker(text)) for title, text in report.sections]
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        run = item.stash.get(RUN_KEY, None)
        env = _env_name(item)
        suite = item.config.stash[SUITE_KEY]
        environment = suite.environments.get(env)
        plan = item.stash.get(PLAN_KEY, [])
        done, recheck = item.stash.get(ACTED_KEY, ([], ""))
        result = outcomes.CheckResult(
            check_id=spec.id,
            title=spec.title,
            env=env,
            nodeid=item.nodeid,
            outcome=outcomes.classify(report, call, item.stash.get(REMEDIATION_KEY, "")),
            severity=spec.severity,
            section=link(environment.runbook_url, spec.section) if environment else spec.section,
            measured="; ".join(r.measured for r in run.readings) if run else "",
            threshold="; ".join(r.threshold for r in run.readings) if run else "",
            readings=[r.describe() for r in run.readings] if run else [],
            fix=error.fix if isinstance(error, OpsError) else "",
            remediation=spec.remediation,
            remediation_state=item.stash.get(REMEDIATION_KEY, ""),
            message=outcomes.first_line(report),
            plan=plan,
            done=done,
            recheck=recheck,
            depends=list(spec.depends),
            touched=sorted(run.touched) if run else [],
            aws_actions=sorted(run.aws_actions) if run else [],
            duration_seconds=round(report.duration, 3),
            values=[{"label": r.label, "value": r.value, "limit": r.limit} for r in run.readings] if run else [],
            recorded=[[name, value, labels] for name, value, labels in run.recorded] if run else [],
        )
        # Readings, plans and labels quote what was measured: masked once here, for every output that shows them.
        result = outcomes.CheckResult(**masker.data(asdict(result)))
        # On the item: junit writes the properties of the teardown report, which copies them from the item.
        item.user_properties.extend(result.as_properties())
    return report


def _verdict(item: pytest.Item, error: BaseException) -> str | None:
    """An on-call engineer reads a verdict, not test source: one line unless --tb asks for more."""
    if item.config.option.tbstyle != "auto":
        return None
    if isinstance(error, Fixed):
        return f"FIXED {error}"
    if isinstance(error, AssertionError):
        return f"FAIL {error}"
    if isinstance(error, OpsError):
        return f"ERROR {error}" + (f"\n  fix: {error.fix}" if error.fix else "")
    if isinstance(error, LookupError):
        return f"ERROR {error}"
    return None


def _renders_verdicts(item: pytest.Item) -> None:
    """pytest renders a failed call's traceback, source included, before any hook sees its report: a tenth of a
    failing run's CPU, for a text the verdict replaces. The check's item renders its verdict instead."""
    render_traceback = item.repr_failure

    def repr_failure(excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        verdict = _verdict(item, excinfo.value)
        return verdict if verdict is not None else render_traceback(excinfo)

    item.repr_failure = repr_failure


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    result = outcomes.CheckResult.from_properties(report.user_properties) if report.when == "teardown" else None
    if result is not None:
        outcomes.collector.append(result)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    suite = item.config.stash.get(SUITE_KEY, None)
    if suite is not None:
        suite.running = item.nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """pytest's own account of Ctrl-C renders each frame of the interrupted traceback, and fails (TypeError) on one
    without a line number, as Ctrl-C while a context manager is entered leaves: the run then ended as if nothing had
    happened (exit 0, no word). Such frames say nothing to a person anyway: dropped before pytest renders them."""
    excinfo.traceback = excinfo.traceback.filter(_has_line_number)


def _has_line_number(entry: Any) -> bool:
    try:
        entry.lineno  # noqa: B018 - the property is what fails
    except TypeError:
        return False
    return True


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    suite = config.stash.get(SUITE_KEY, None)
    if suite is None:
        return
    results = outcomes.collector.drain()
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        # What a person needs after Ctrl-C: which check it stopped, and how much was judged. An experiment's rollbacks
        # have run by now (its runner's finally); a remediation in progress is in the audit log.
        judged = {r.nodeid for r in results}
        session = config.stash.get(SESSION_KEY, None)
        left = [item.nodeid for item in (session.items if session else []) if item.nodeid not in judged]
        stopped = f" during {suite.running}" if suite.running and suite.running not in judged else ""
        terminalreporter.write_line(f"interrupted{stopped}: {len(judged)} check(s) judged, {len(left)} not judged; "
                                    "an experiment's rollbacks ran, an action's record is in the audit log", red=True)
    if not results:
        return
    outcomes.write_summary(terminalreporter, results, [p.line() for p in suite.preflights.values() if not p.ok])
    if suite.reports_dir is not None:
        reports.write_allure_metadata(Path(config.option.allure_report_dir), suite.environments.values())
        wall = time.monotonic() - suite.began
        marker = config.option.markexpr or "all"
        reports.write_summary_json(suite.reports_dir / "summary.json", results, marker=marker, wall_seconds=wall)
        say = lambda line: terminalreporter.write_line(line, yellow=True)  # noqa: E731
        for environment in suite.environments.values() if config.getoption("entmoot_export") else ():
            _export_metrics(environment, results, marker, wall, say)
            _notify(suite, environment, results, say)


def _resolver(suite: Suite, env: str) -> Any:
    """A reference of the environment as its preflight resolved it; a problem the preflight found is raised."""
    def resolve(reference: str, key: str) -> str:
        found = suite.preflights.get(env)
        if found is not None and reference in found.resolved:
            return found.resolved[reference]
        problem = found.problems.get(reference) if found is not None else None
        raise ConfigError(f"{key}: {problem.detail if problem else 'not resolved by the preflight'}",
                          fix=problem.fix if problem else "")
    return resolve


def _notify(suite: Suite, environment: Environment, results: list[outcomes.CheckResult], say: Any) -> None:
    settings = environment.notify
    if not (settings.slack_webhook or settings.pagerduty_routing_key or settings.webhook):
        return
    from entmoot_ops import notify

    state = Path(settings.state_file) if settings.state_file else suite.reports_dir / "notify-state.json"
    notify.notify(environment, results, notify.StateFile(state), _resolver(suite, environment.name), say)


def _export_metrics(environment: Environment, results: list[outcomes.CheckResult], marker: str, wall: float, say: Any) -> None:
    """A textfile-collector file per environment and marker, and a push, each where configured. A failure is one
    line: dashboards never cost a verdict."""
    settings = environment.metrics
    if not (settings.textfile_dir or settings.pushgateway):
        return
    from entmoot_ops import metrics

    try:
        registry = metrics.registry(environment.name, results, wall, time.time())
        if settings.textfile_dir:
            metrics.textfile(Path(settings.textfile_dir), environment.name, marker, registry)
        if settings.pushgateway:
            metrics.push(settings.pushgateway, environment.name, marker, registry, settings.timeout_seconds)
    except Exception as exc:  # noqa: BLE001 - see above
        say(masker(f"metrics [{environment.name}]: not exported: {one_line(exc)}"))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    close_ssh_connections()
    suite = config.stash.get(SUITE_KEY, None)
    for handle in suite.sandboxes if suite else ():
        handle.release()
    if suite and suite.handoff is not None and not hasattr(config, "workerinput"):
        shutil.rmtree(suite.handoff.parent, ignore_errors=True)
    session = config.stash.get(SESSION_KEY, None)
    # Only a run that ended as runs end: a usage error, an interruption or an internal error is still on its way
    # up to pytest, which prints it after this hook. An xdist worker has sent all it had to say when its session
    # finished ("workerfinished"); the controller waits for its process to end before it can end itself.
    # Nor one that an exception is still leaving: its exit status was never set (it would end as 0).
    if (session is not None and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
            and _runs_checks(config) and sys.exc_info()[1] is None):
        _exit_now(int(session.exitstatus))


def _exit_now(status: int) -> None:
    """The last step of a run of checks, after every plugin has finished (this hook runs last): what remains is the
    interpreter freeing every object one by one, a quarter of a small run's time (0.2 to 0.4 s), paid again by
    each observation of a chaos experiment. Exit-time handlers still run and output is flushed; only that is skipped."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    suite = session.config.stash.get(SUITE_KEY, None)
    if suite is not None and suite.refusal:
        print(f"ERROR: {suite.refusal}", file=sys.stderr, flush=True)
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    # A checklist that selected nothing proves nothing: say so with a failing exit, not pytest's quiet 5.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and _runs_checks(session.config):
        session.config.get_terminal_writer().line("ERROR no check selected: nothing was verified", red=True)
    if suite is not None and suite.gameday is not None and suite.gameday.journals:
        results = getattr(session.config.option, "allure_report_dir", None)
        written = suite.gameday.write(next(iter(suite.environments)), (suite.reports_dir or Path("reports")) / "gameday",
                                      Path(results) if results else None)
        session.config.get_terminal_writer().line(f"game day report: {written}")
