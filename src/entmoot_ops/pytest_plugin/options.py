"""The plugin's command-line options and ini settings, and the layout they give: where the checks are."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("entmoot_checks_dir", default="checks",
                  help="the directory of the checks, relative to the rootdir (default checks): a run of it is a run of checks")
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
    group.addoption("--shard", dest="entmoot_shard", default=None, metavar="K/N",
                    help="run the K-th of N parts of the selection (whole environments, or check groups when there are "
                         "fewer environments than shards); every runner computes the same parts: a CI matrix or a "
                         "Kubernetes Indexed Job runs them, `entmoot-ops report --merge DIR...` joins their reports")
    group.addoption("--fail-on", dest="entmoot_fail_on", default="any", choices=("any", "new", "warn"),
                    help="what fails the exit code: any failure (default); only a failure new since the last run (a gate "
                         "on an environment with known problems); or any failure and any WARN (a gauge about to cross "
                         "its threshold)")
    group.addoption("--no-history", action="store_false", dest="entmoot_history",
                    help="neither read nor write the history ([history]): no change since the last run is said, and this "
                         "run is not remembered; a chaos experiment's observations run so")
    group.addoption("--no-export", action="store_false", dest="entmoot_export",
                    help="tell no notification channel ([notify]) and export no metrics ([metrics]); a chaos experiment's "
                         "observations run so: their red checks are the experiment's instrument, its own verdict is what "
                         "is told and exported")


def checks_arg(config: pytest.Config) -> str:
    """The checks' directory as a command names it (``checks/``), relative to the rootdir."""
    return str(config.getini("entmoot_checks_dir")).rstrip("/") + "/"


def checks_dir(config: pytest.Config) -> Path:
    """The checks' directory (ini ``entmoot_checks_dir``, default ``checks``, under the rootdir)."""
    return config.rootpath / str(config.getini("entmoot_checks_dir"))


_RUNS_CHECKS = pytest.StashKey[bool]()


def runs_checks(config: pytest.Config) -> bool:
    """Whether this run is a run of checks: it names the checks' directory or something inside it (asked by hooks
    of every check: decided once)."""
    if _RUNS_CHECKS not in config.stash:
        directory = checks_dir(config).resolve()
        config.stash[_RUNS_CHECKS] = any(
            path == directory or directory in path.parents
            for path in ((config.invocation_params.dir / arg.split("::")[0]).resolve()
                         for arg in config.args or [str(config.invocation_params.dir)]))
    return config.stash[_RUNS_CHECKS]
