"""The environments of a run: loaded and refused when configured (actions not allowed, a gate without its version),
and their preflights, the sandbox started or attached first for a sandbox environment."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from entmoot_ops import preflight, progress, redaction
from entmoot_ops.chaos import experiment_catalogue
from entmoot_ops.config import environments_dir, load_environment
from entmoot_ops.errors import ConfigError, OpsError
from entmoot_ops.history import silences
from entmoot_ops.pytest_plugin import load_and_chaos, game_day, results
from entmoot_ops.pytest_plugin.options import runs_checks
from entmoot_ops.pytest_plugin.selection import refuse_unknown_selection, register_components, selects
from entmoot_ops.pytest_plugin.state import SUITE_KEY, Suite
from entmoot_ops.remediation import AuditLog
from entmoot_ops.secrets import masker


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    names = config.getoption("entmoot_envs") or [os.environ.get("ENTMOOT_ENV") or "sandbox"]
    directory = Path(config.getoption("entmoot_envdir") or environments_dir())
    try:
        environments = {name: load_environment(name, directory) for name in dict.fromkeys(names)}
        redaction.adopt(environment.redaction for environment in environments.values())
        silenced = {name: silences.load(silences.path_of(directory, name), environment.silences)
                    for name, environment in environments.items()}
        # checks/test_chaos.py makes a check of each file; one that is wrong is refused only by a run selecting it
        experiment_catalogue.select(config.rootpath, environments.values(), strict=False)
    except ConfigError as exc:
        raise pytest.UsageError(masker(str(exc))) from None
    selects_load, selects_chaos = selects(config, "load"), selects(config, "chaos")
    if config.getoption("entmoot_yes") and not (config.getoption("entmoot_remediate") or selects_load or selects_chaos):
        raise pytest.UsageError("--yes confirms an action: it needs --remediate, a load run (-m load) or chaos (-m chaos)")
    load_and_chaos.refuse_configured(environments, load_run=selects_load, chaos=selects_chaos, confirmed=config.getoption("entmoot_yes"))

    # The gate's version is asked for here, before xdist starts its workers, where -m or --check selects the gate; a
    # selection by -k is refused once collected.
    gate = selects(config, "deploy") or any(c.startswith("deploy.") for c in config.getoption("entmoot_checks"))
    if gate and not config.getoption("entmoot_expected_version"):
        raise pytest.UsageError("the deploy gate needs --expected-version (the version /health and the PRIMARY image must carry)")
    gameday = game_day.from_options(config, selects_chaos, list(environments))
    reports_option = config.getoption("entmoot_reports")
    reports_dir = Path(reports_option) if reports_option else (Path("reports") if runs_checks(config) else None)
    if runs_checks(config):
        register_components(config)
    if reports_dir is not None and not hasattr(config, "workerinput"):
        refuse_unknown_selection(config)
        results.direct(config, reports_dir)
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
        silences=silenced,
    )
    config.stash[SUITE_KEY] = suite
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "entmoot_preflight" in workerinput:
        suite.handoff = Path(workerinput["entmoot_preflight"])
    progress.write = lambda line: say(config, line)
    results.report_verdicts_in_allure(config)


_SAYING = threading.Lock()


def say(config: pytest.Config, line: str) -> None:
    """A line on the terminal now, even while a check runs and pytest captures its output."""
    # An xdist worker has no terminal of its own (its stderr is the controller's); a check measuring ahead of its turn
    # must not suspend the capture of the check pytest runs now.
    if hasattr(config, "workerinput") or threading.current_thread() is not threading.main_thread():
        with _SAYING:
            print(masker(line), file=sys.__stderr__, flush=True)
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line(masker(line))
        else:
            print(masker(line), file=sys.__stderr__, flush=True)


def preflight_of(suite: Suite, name: str, say: Any = None) -> preflight.Preflight:
    """Start or attach the sandbox of a sandbox environment, then resolve the environment's references (the
    preflight without IAM's advice: see run_preflights)."""
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
    return preflight.resolve(environment, remediate=suite.remediate)


def run_preflights(config: pytest.Config, meanwhile: Callable[[], None] = lambda: None) -> None:
    """Every environment's preflight, side by side (each waits on its own endpoints), each said on its line in the
    environments' order. A sandbox is started or attached first, on its own: it says what it does as it does it.
    ``meanwhile`` runs once every reference is resolved, while IAM is asked for its advice: the checks start to
    measure then, since that advice only serves the preflight's line."""
    suite = config.stash[SUITE_KEY]
    waiting = [name for name in suite.environments if name not in suite.preflights]
    sandboxes = [name for name in waiting if suite.environments[name].kind == "sandbox"]
    for name in sandboxes:
        suite.preflights[name] = preflight_of(suite, name, say=lambda line: say(config, line))
    others = [name for name in waiting if name not in sandboxes]
    with ThreadPoolExecutor(max(1, min(len(waiting), 16)), thread_name_prefix="entmoot-preflight") as pool:
        suite.preflights.update(zip(others, pool.map(lambda name: preflight_of(suite, name), others), strict=True))
        meanwhile()
        list(pool.map(lambda name: preflight.advise(suite.preflights[name], suite.environments[name], mode=suite.mode,
                                                    asked=suite.asked), waiting))
    for name in waiting:
        say(config, suite.preflights[name].line())


def hand_over(suite: Suite) -> None:
    """Under xdist the controller hands its preflight (and the sandbox it attached to) to the workers in a file,
    written before any check is sent to one."""
    handed = {"preflights": {name: p.to_json() for name, p in suite.preflights.items()},
              "sandbox_state": os.environ.get("ENTMOOT_SANDBOX_STATE"), "started_at": suite.started_at}
    suite.handoff.write_text(json.dumps(handed), encoding="utf-8")


def handed_over(suite: Suite) -> None:
    """A worker takes the controller's preflight (and the sandbox it attached to) instead of running its own."""
    handed = json.loads(suite.handoff.read_text(encoding="utf-8"))
    if handed["sandbox_state"]:
        os.environ["ENTMOOT_SANDBOX_STATE"] = handed["sandbox_state"]
    suite.started_at = handed["started_at"]
    suite.preflights.update({name: preflight.Preflight.from_json(data) for name, data in handed["preflights"].items()})
