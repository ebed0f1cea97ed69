"""The on-call's memory on the sandbox, as an on-call meets it: a failure new, then still; a silence that turns the
exit to 0 and shows SILENCED; refused silences; the fix resolved; ``history --json``. Then a gauge's forecast, a
flapping check and a damaged store, on SQLite and on a PostgreSQL server of the test's own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT, settle
from entmoot_ops.config import HistorySettings
from entmoot_ops.history.store import DAY, Remembered, Run, open_store
from postgres_server import postgres_server


def _ops(*args: str, directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entmoot_ops.cli", *args, "--environments-dir", str(directory)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def _flat(output: str) -> str:
    """The summary's rows unwrapped: how a row wraps depends on the terminal's width."""
    return re.sub(r"\n +", " ", output)


def _junit_case(run, check_id: str) -> ET.Element:
    for case in ET.parse(run.reports / "junit.xml").getroot().iter("testcase"):
        if any(p.get("name") == "check_id" and p.get("value") == check_id for p in case.iter("property")):
            return case
    raise AssertionError(f"{check_id} not in junit")


def _property(run, check_id: str, name: str) -> str | None:
    return next((p.get("value") for p in _junit_case(run, check_id).iter("property") if p.get("name") == name), None)


def _allure(run, check_id: str) -> dict:
    for path in (run.reports / "allure-results").glob("*-result.json"):
        result = json.loads(path.read_text())
        if {"name": "check_id", "value": check_id} in result.get("labels", []):
            return result
    raise AssertionError(f"{check_id} not in Allure's results")


def test_a_failure_is_new_then_still_a_silence_turns_the_exit_to_0_and_the_fix_is_resolved(sandbox, run_checks, environments):
    directory = environments()

    def run(*more: str):
        return run_checks("--check", "rds.free-storage", "--environments-dir", str(directory), *more)

    assert run().returncode == 0
    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        settle(sandbox)
        new = run()
        assert new.returncode == 1, new.output[-2000:]
        assert re.search(r"^FAIL\s+rds.free-storage\s+sandbox\s+\[new\] free storage", _flat(new.output), re.M), new.output[-2000:]
        assert _property(new, "rds.free-storage", "change") == "new"
        # A gate on an environment with known problems: what is not new does not fail it.
        still = run("--fail-on", "new")
        assert still.returncode == 0, still.output[-2000:]
        assert re.search(r"\[still, since \d{4}-\d\d-\d\d \d\d:\d\d UTC, 2 runs\]", _flat(still.output)), still.output[-2000:]
        summary = json.loads((still.reports / "summary.json").read_text())
        assert summary["checks"][0]["change"] == "still" and summary["checks"][0]["failing_runs"] == 2

        for refused, said in ((["--reason", "disk resize booked"], "a silence needs an end"),
                              (["--until", "45d", "--reason", "disk resize booked"], "more than 30 days away")):
            done = _ops("silence", "add", "--env", "sandbox", "--check", "rds.free-storage", *refused, directory=directory)
            assert done.returncode == 4 and said in done.stderr, done.stderr
        added = _ops("silence", "add", "--env", "sandbox", "--check", "rds.free-storage", "--until", "20h", "--reason",
                     "disk resize booked (CHG-1234)", "--by", "alice", directory=directory)
        assert added.returncode == 0, added.stderr
        silenced = run()
        assert silenced.returncode == 0, silenced.output[-2000:]
        row = re.search(r"^SILENCED rds.free-storage\s+sandbox\s+\[still[^\n]*free storage[^\n]*\d\.\d\d%[^\n]*-> silenced by alice "
                        r"until \d{4}-\d\d-\d\d \d\d:\d\d UTC \([0-9a-f]{8}\): disk resize booked \(CHG-1234\)", _flat(silenced.output), re.M)
        assert row, silenced.output[-2000:]
        case = _junit_case(silenced, "rds.free-storage")
        skipped = case.find("skipped")
        assert skipped is not None and skipped.get("message").startswith("SILENCED free storage"), ET.tostring(case)
        allure = _allure(silenced, "rds.free-storage")
        assert allure["status"] == "skipped" and allure["statusDetails"]["message"].startswith("SILENCED free storage")
        assert "checks: 1 silenced" in silenced.output
        ending = re.search(r"^silence [0-9a-f]{8} of rds.free-storage \[sandbox\] ends in 20 h \(", _flat(silenced.output), re.M)
        assert ending, silenced.output[-1500:]
        identifier = added.stdout.split()[1]
        assert _ops("silence", "expire", identifier, "--env", "sandbox", directory=directory).returncode == 0
        unsilenced = run()
        assert unsilenced.returncode == 1 and "[new]" in unsilenced.output  # expired: gone, and it fails again, as news
    settle(sandbox)
    settle(sandbox)  # a period holding no reading from before the undo
    resolved = run()
    assert resolved.returncode == 0, resolved.output[-2000:]
    assert re.search(r"^PASS\s+rds.free-storage\s+sandbox\s+\[resolved\]", _flat(resolved.output), re.M), resolved.output[-2000:]

    listed = _ops("history", "--env", "sandbox", "--check", "rds.free-storage", "--json", directory=directory)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [(r["outcome"], r["change"]) for r in runs] == [("pass", ""), ("fail", "new"), ("fail", "still"), ("silenced", "still"),
                                                           ("fail", "new"), ("pass", "resolved")]
    assert runs[1]["readings"][0]["value"] == pytest.approx(0.05, abs=0.005) and runs[1]["readings"][0]["limit"] == 0.1
    assert runs[3]["silence"] == identifier
    table = _ops("history", "--env", "sandbox", "--check", "rds.free-storage", directory=directory).stdout
    assert len(table.splitlines()) == 6 and "SILENCED" in table and "> 10.00%" in table, table


@pytest.fixture(params=["sqlite", "postgres"])
def history_store(request, environments, tmp_path):
    """An environments directory whose sandbox names its store, and that store's settings (to seed it)."""
    if request.param == "sqlite":
        return environments(), HistorySettings(path=str(Path(os.environ["XDG_STATE_HOME"]) / "entmoot-ops" / "history.sqlite3"))
    server = postgres_server()
    dsn = server.__enter__()
    request.addfinalizer(lambda: server.__exit__(None, None, None))
    os.environ["ENTMOOT_TEST_HISTORY_DSN"] = dsn
    request.addfinalizer(lambda: os.environ.pop("ENTMOOT_TEST_HISTORY_DSN", None))
    directory = environments(replace={"[thresholds]\n": '[history]\ndsn = "env:ENTMOOT_TEST_HISTORY_DSN"\n\n[thresholds]\n'})
    return directory, HistorySettings(dsn="env:ENTMOOT_TEST_HISTORY_DSN")


def test_a_gauge_heading_for_its_threshold_warns_a_flapping_check_is_marked_and_charts_are_attached(sandbox, run_checks, history_store):
    directory, settings = history_store
    store = open_store(settings, lambda reference, key: os.environ[reference[4:]])
    now = time.time()
    # Two weeks of free storage falling 4 points a day, and a check that alternated: as a month of mornings leaves them.
    for index in range(14 * 2):
        at = now - 14 * DAY + index * DAY / 2
        free = 0.90 - 0.04 * index / 2
        store.record(Run(f"seeded-{index}", "sandbox", at, "0.9", "morning"), [
            Remembered("rds.free-storage", "", "pass", [{"label": "free storage", "value": free, "limit": 0.1, "unit": "%", "op": ">",
                                                         "gauge": "free storage", "measured": f"{free:.2%}", "threshold": "> 10.00%"}]),
            Remembered("rds.available", "", "pass" if index % 2 else "fail")])
    store.close()
    with sandbox.fault("rds_low_storage", free_ratio=0.34):
        settle(sandbox)
        args = ("--check", "rds.free-storage", "--check", "rds.available", "--environments-dir", str(directory), "--charts", "failures")
        warned = run_checks(*args)
        failing = run_checks(*args, "--fail-on", "warn", "-n", "2")  # xdist's workers read the memory too
    assert warned.returncode == 0, warned.output[-2000:]
    line = re.search(r"^WARN\s+rds.free-storage\s+sandbox\s+free storage 3\d\.\d\d% now, crosses 10\.00% in about (\d+) days at the last "
                     r"14 days' rate", _flat(warned.output), re.M)
    assert line and 4 <= int(line.group(1)) <= 7, warned.output[-2000:]
    assert re.search(r"^PASS\s+rds.available\s+sandbox\s+\[flapping\]", _flat(warned.output), re.M), warned.output[-2000:]
    assert _property(warned, "rds.free-storage", "warning").startswith("WARN rds.free-storage: free storage 3")
    assert _property(warned, "rds.available", "flapping") == "true"
    allure = _allure(warned, "rds.free-storage")
    assert allure["status"] == "passed" and {"name": "tag", "value": "warn"} in allure["labels"]
    chart = next(a for a in allure.get("attachments", []) if a["name"] == "readings over the last runs")
    svg = (warned.reports / "allure-results" / chart["source"]).read_text()
    assert chart["type"] == "image/svg+xml" and "threshold 10 %" in svg and "free storage" in svg
    summary = json.loads((warned.reports / "summary.json").read_text())
    assert summary["changes"]["warn"] == 1 and summary["changes"]["flapping"] == 1
    assert failing.returncode == 1 and "WARN" in failing.output  # --fail-on warn: a WARN fails the exit code
    assert "[flapping]" in failing.output
    store = open_store(settings, lambda reference, key: os.environ[reference[4:]])
    assert len(store.results("sandbox", "rds.available", 0)) == 28 + 2  # each run written once, by the controller
    store.close()


def test_a_damaged_store_costs_one_line_and_no_verdict(sandbox, run_checks, own_state_directory):
    path = own_state_directory / "entmoot-ops" / "history.sqlite3"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00not a database\x00" * 512)
    run = run_checks("--check", "rds.available", "--check", "api.health")
    assert run.returncode == 0 and run.outcome("rds.available") == "pass" and run.outcome("api.health") == "pass"
    lines = [line for line in run.output.splitlines() if line.startswith("history [sandbox]")]
    assert len(lines) == 1 and "not a database" in lines[0], run.output[-2000:]
