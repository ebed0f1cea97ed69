"""A typo in the selection is refused before anything starts, connects or deletes: no sandbox, the last run's
junit and Allure results as they were, one line with the closest names. (It used to start a sandbox for 11 to 35 s,
then empty reports/ and write a junit file of 0 tests.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _checks(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    reports = tmp_path / "reports"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ENTMOOT_")}
    environment |= {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}  # no sandbox left running to attach
    return subprocess.run([sys.executable, "-m", "pytest", "checks/", "--reports-dir", str(reports), *args], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "says"), [
    (("-m", "mornin"), "-m: no checklist or component 'mornin' (did you mean morning?)"),
    (("-m", "morning and not redsi"), "-m: no checklist or component 'redsi' (did you mean redis"),
    (("-k", "nosuchcheck"), "-k 'nosuchcheck' selects no check: nothing was started or verified"),
    (("-k", "eror_rate"), "-k 'eror_rate' selects no check (did you mean error_rate, "),
    # xdist's workers collect, not the controller, which hears of an empty selection only from them
    (("-k", "eror_rate", "-n", "2"), "-k 'eror_rate' selects no check (did you mean error_rate, "),
    (("--check", "chaos.kill-redsi"), "--check: no check 'chaos.kill-redsi' (did you mean chaos.kill-redis"),
    (("--check", "api.healht", "-m", "morning"), "--check: no check 'api.healht' (did you mean api.health?)"),
    (("-m", "deploy"), "the deploy gate needs --expected-version"),
    (("-m", "deploy", "-n", "2"), "the deploy gate needs --expected-version"),
    # refused by the workers that collected it: the controller says their words, and nothing started
    (("-k", "reported_version", "-n", "2"), "the deploy gate needs --expected-version (selected: checks/test_deploy.py::"),
], ids=["marker", "marker-in-expression", "keyword", "keyword-close", "keyword-under-xdist", "chaos-check", "check",
        "deploy-without-version", "deploy-without-version-under-xdist", "deploy-by-keyword-under-xdist"])
def test_a_typo_starts_nothing_and_keeps_the_last_run(tmp_path, args, says):
    reports = tmp_path / "reports"
    (reports / "allure-results").mkdir(parents=True)
    (reports / "junit.xml").write_text("<testsuites><testsuite name='the last real run' tests='18'/></testsuites>")
    (reports / "allure-results" / "last-run-result.json").write_text("{}")
    result = _checks(tmp_path, *args)
    assert result.returncode == 4, result.stdout + result.stderr
    assert says in result.stderr, result.stderr
    assert "sandbox: starting" not in result.stdout + result.stderr and "preflight" not in result.stdout
    assert "Traceback" not in result.stderr and not (tmp_path / "state" / "entmoot-ops").exists()
    assert (reports / "junit.xml").read_text().startswith("<testsuites><testsuite name='the last real run'")
    assert (reports / "allure-results" / "last-run-result.json").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("distributed", [(), ("-n", "2")], ids=["one-process", "xdist"])
def test_a_run_that_starts_its_own_sandbox_says_so_and_counts_the_boot(tmp_path, distributed):
    """No silence while the sandbox boots, and pytest's closing time includes the boot the run waited for. Under
    xdist the workers, started before the sandbox, check against the one the controller started."""
    result = _checks(tmp_path, "-m", "morning", "-k", "api_health or replication", *distributed)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "sandbox: starting on 127.0.0.1 (PostgreSQL primary and replica, Redis, AWS endpoint, API) ..." in output
    assert output.count("sandbox: starting") == 1, output
    ready = float(re.search(r"sandbox: ready in ([\d.]+) s", output).group(1))
    session = float(re.search(r"4 passed(, \d+ deselected)? in ([\d.]+)s", output).group(2))
    assert session >= ready, (ready, session)
    state = tmp_path / "state" / "entmoot-ops"  # the sandbox's state is gone; the run's history stays
    assert not state.exists() or not [path for path in state.iterdir() if not path.name.startswith("history.sqlite3")]
