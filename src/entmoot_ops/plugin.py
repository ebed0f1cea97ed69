"""The pytest plugin: environments, check metadata, outcomes, the remediation flow, summary and reports."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from entmoot_ops import load, outcomes, preflight, progress, reports
from entmoot_ops.breaker import fresh
from entmoot_ops.chaos import guard as chaos_guard
from entmoot_ops.check import CHECKLISTS, SEVERITIES, CheckRun, CheckSpec, current_run
from entmoot_ops.clients import Clients
from entmoot_ops.config import Environment, environments_dir, load_environment
from entmoot_ops.errors import ConfigError, OpsError
from entmoot_ops.remediation import REGISTRY, AuditLog, RemediationContext, describe_changes
from entmoot_ops.runbook import SECTIONS, link
from entmoot_ops.secrets import masker

RUN_KEY = pytest.StashKey[CheckRun]()
PLAN_KEY = pytest.StashKey[list[str]]()
REMEDIATION_KEY = pytest.StashKey[str]()


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
    group.addoption("--expected-version", dest="entmoot_expected_version", default=None, metavar="VERSION",
                    help="the version the deploy gate (-m deploy) expects /health and the PRIMARY image to carry")


@dataclass
class Suite:
    """Run-wide state: the environments selected and their loaded configuration."""

    environments: dict[str, Environment]
    remediate: bool
    confirmed: bool
    reports_dir: Path | None
    audit: AuditLog
    preflights: dict[str, preflight.Preflight] = field(default_factory=dict)
    sandboxes: list[Any] = field(default_factory=list)  # handles this process holds, released at the end


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

    reports_option = config.getoption("entmoot_reports")
    reports_dir = Path(reports_option) if reports_option else (Path("reports") if _runs_checks(config) else None)
    if reports_dir is not None and not hasattr(config, "workerinput"):
        reports_dir.mkdir(parents=True, exist_ok=True)
        if not config.option.xmlpath:
            config.option.xmlpath = str(reports_dir / "junit.xml")
        if getattr(config.option, "allure_report_dir", None) is None:
            results = reports_dir / "allure-results"
            # Each run's results alone: a report must not mix runs or environments. The trend is carried by
            # the report's history (entmoot-ops report), not by old results. Here, not by allure's own
            # --clean-alluredir, which every xdist worker would also apply while another is writing.
            if not config.option.collectonly:
                shutil.rmtree(results, ignore_errors=True)
            config.option.allure_report_dir = str(results)
    audit_path = config.getoption("entmoot_audit") or str((reports_dir or Path("reports")) / "audit.jsonl")
    suite = Suite(
        environments=environments,
        remediate=config.getoption("entmoot_remediate"),
        confirmed=config.getoption("entmoot_yes"),
        reports_dir=reports_dir,
        audit=AuditLog(Path(audit_path)),
    )
    config.stash[SUITE_KEY] = suite
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "entmoot_preflight" in workerinput:
        suite.preflights = {name: preflight.Preflight.from_json(data) for name, data in workerinput["entmoot_preflight"].items()}
    progress.write = lambda line: _say(config, line)


def _refuse_unless_allowed(refuse: Any, environment: Environment, *, confirmed: bool) -> None:
    try:
        refuse(environment, confirmed=confirmed)
    except ConfigError as exc:
        raise pytest.UsageError(f"{exc} ({exc.fix})") from None


def _selects(config: pytest.Config, marker: str) -> bool:
    """Whether -m selects a marker's checks, by pytest's own -m grammar ("load", "load and not x", not "not load")."""
    expression = config.option.markexpr
    if not expression:
        return False
    try:
        from _pytest.mark.expression import Expression
    except ImportError:  # pytest moved its private grammar: judge by the word
        return marker in expression.split()
    return Expression.compile(expression).evaluate(lambda name, **_: name == marker)


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


def _preflight(suite: Suite, name: str) -> preflight.Preflight:
    """Start or attach the sandbox of a sandbox environment, then resolve the environment's references."""
    environment = suite.environments[name]
    if environment.kind == "sandbox":
        from entmoot_ops.sandbox.handle import attach_or_start

        try:
            handle = attach_or_start()
            suite.sandboxes.append(handle)
            # What this run starts (xdist workers, a chaos experiment's observations) uses the same sandbox.
            os.environ["ENTMOOT_SANDBOX_STATE"] = str(handle.state_file)
        except OpsError as exc:
            problem = preflight.Problem("sandbox", masker(str(exc)), exc.fix)
            return preflight.Preflight(name, fatal=problem)
    return preflight.run(environment, remediate=suite.remediate)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Before any check, and before xdist starts its workers (which receive the result): the preflight."""
    config = session.config
    if hasattr(config, "workerinput") or config.option.collectonly or not _runs_checks(config):
        return
    suite = config.stash[SUITE_KEY]
    for name in suite.environments:
        suite.preflights[name] = _preflight(suite, name)
        _say(config, suite.preflights[name].line())


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    suite = node.config.stash[SUITE_KEY]
    node.workerinput["entmoot_preflight"] = {name: p.to_json() for name, p in suite.preflights.items()}


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
    if name not in suite.preflights:  # checks run from a path pytest_sessionstart did not recognise
        suite.preflights[name] = _preflight(suite, name)
    clients = Clients(suite.environments[name], preflight=suite.preflights[name])
    request.addfinalizer(clients.close)
    return Target(suite.environments[name], clients)


@pytest.fixture
def replica(request: pytest.FixtureRequest, env: Target) -> Any:
    return next(r for r in env.config.postgres.replicas if r.name == request.param)


@pytest.fixture(scope="session")
def reports_dir(request: pytest.FixtureRequest) -> Path:
    """Where this run's reports go: what a check run leaves beside junit and Allure (locust's files, say)."""
    return request.config.stash[SUITE_KEY].reports_dir or Path("reports")


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
    needs = [item.nodeid for item in items if "expected_version" in getattr(item, "fixturenames", ())]
    if needs and not config.getoption("entmoot_expected_version"):
        raise pytest.UsageError(f"the deploy gate needs --expected-version (selected: {needs[0]} and {len(needs) - 1} more)")
    suite = config.stash[SUITE_KEY]
    # Load checks selected otherwise than by -m (-k, node ids): refused here, before any runs.
    for fixture, refuse in (("load_run", load.refuse_unless_allowed), ("chaos_runner", chaos_guard.refuse_unless_allowed)):
        for name in dict.fromkeys(_env_name(item) for item in items if fixture in getattr(item, "fixturenames", ())):
            _refuse_unless_allowed(refuse, suite.environments[name], confirmed=suite.confirmed)
    _validate_metadata(config, items)


def _select_checks(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = set(config.getoption("entmoot_checks"))
    if not wanted:
        return
    known = {m.kwargs.get("id") for item in items if (m := item.get_closest_marker("check"))}
    if wanted - known:
        raise pytest.UsageError(f"--check: no check {', '.join(sorted(wanted - known))} among the selected checks")
    keep = [item for item in items if (m := item.get_closest_marker("check")) and m.kwargs.get("id") in wanted]
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


def _remediate(item: pytest.Item, run: CheckRun, failure: AssertionError) -> bool:
    """Plan (always) and, on --remediate, act and verify. True when the re-check passed."""
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
    item.stash[PLAN_KEY] = plan
    reports.attach_plan(remediation, plan)
    if not suite.remediate:
        item.stash[REMEDIATION_KEY] = "planned"
        return False
    audit = dict(env=target.name, check_id=run.spec.id, remediation_id=remediation.id)
    if remediation.act is None:
        item.stash[REMEDIATION_KEY] = "manual"
        return False
    if target.config.production and not suite.confirmed:
        item.stash[REMEDIATION_KEY] = "refused: production needs --yes"
        suite.audit.write(event="refused", reason="production environment without --yes", plan=plan, **audit)
        return False
    try:
        with fresh():
            changes = remediation.act(context)
    except OpsError as exc:
        item.stash[REMEDIATION_KEY] = f"action failed: {exc}"
        suite.audit.write(event="action-failed", error=str(exc), plan=plan, **audit)
        return False
    finally:
        context.writable.close()
    suite.audit.write(event="acted", changes=describe_changes(changes), failure=str(failure), **audit)
    reports.attach_changes(changes)
    settings = target.config.remediation
    fixed, last = _recheck(item, run, time.monotonic() + settings.verify_timeout_seconds, settings.verify_interval_seconds)
    item.stash[REMEDIATION_KEY] = "fixed" if fixed else "not fixed"
    suite.audit.write(event="verified" if fixed else "not-fixed", recheck=last or "passed", **audit)
    return fixed


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
        return (yield)
    except AssertionError as failure:
        if _remediate(item, run, failure):
            return None
        raise
    finally:
        current_run.reset(token)


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
    if error is not None and item.config.option.tbstyle == "auto":
        # An on-call engineer reads a verdict, not test source: one line unless --tb asks for more.
        if isinstance(error, AssertionError):
            report.longrepr = f"FAIL {error}"
        elif isinstance(error, OpsError):
            report.longrepr = f"ERROR {error}\n  fix: {error.fix}"
        elif isinstance(error, LookupError):
            report.longrepr = f"ERROR {error}"
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        report.longrepr = masker(str(report.longrepr))
    report.sections = [(title, masker(text)) for title, text in report.sections]
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        run = item.stash.get(RUN_KEY, None)
        env = _env_name(item)
        suite = item.config.stash[SUITE_KEY]
        environment = suite.environments.get(env)
        plan = item.stash.get(PLAN_KEY, [])
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
        )
        # On the item: junit writes the properties of the teardown report, which copies them from the item.
        item.user_properties.extend(result.as_properties())
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    result = outcomes.CheckResult.from_properties(report.user_properties) if report.when == "teardown" else None
    if result is not None:
        outcomes.collector.append(result)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    suite = config.stash.get(SUITE_KEY, None)
    if suite is None:
        return
    results = outcomes.collector.drain()
    if not results:
        return
    outcomes.write_summary(terminalreporter, results, [p.line() for p in suite.preflights.values() if not p.ok])
    if suite.reports_dir is not None:
        reports.write_allure_metadata(Path(config.option.allure_report_dir), suite.environments.values())


def pytest_unconfigure(config: pytest.Config) -> None:
    suite = config.stash.get(SUITE_KEY, None)
    for handle in suite.sandboxes if suite else ():
        handle.release()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A checklist that selected nothing proves nothing: say so with a failing exit, not pytest's quiet 5.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and _runs_checks(session.config):
        session.config.get_terminal_writer().line("ERROR no check selected: nothing was verified", red=True)
