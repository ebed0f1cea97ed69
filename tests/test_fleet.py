"""A fleet across runners: --shard K/N parts a selection the same way on every runner, and `entmoot-ops report
--merge` joins the parts' reports into the report the whole run would have written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT, settle
from custom_checks import environment_file, run_custom_checks
from entmoot_ops import sharding


def _selection(environments: int, components: int, checks_each: int = 2) -> list[tuple[str, str]]:
    return [(f"env{e}", f"part{c}") for e in range(environments) for c in range(components) for _ in range(checks_each)]


@pytest.mark.parametrize(("environments", "components", "count"), [(10, 5, 4), (3, 5, 2), (1, 12, 4), (2, 3, 5), (1, 1, 3)])
def test_the_shards_are_disjoint_whole_even_and_the_same_on_every_runner(environments, components, count):
    checks = _selection(environments, components)
    falls = [sharding.mine(checks, sharding.Shard(k, count)) for k in range(1, count + 1)]
    assert all(sum(column) == 1 for column in zip(*falls, strict=True))  # each check in exactly one shard
    assert falls == [sharding.mine(checks, sharding.Shard(k, count)) for k in range(1, count + 1)]
    sizes = sorted(sum(part) for part in falls)
    by_component = environments < count
    unit = 2 if by_component else 2 * components  # the checks of one unit: a component, or a whole environment
    assert sizes[-1] - sizes[0] <= unit
    for part in falls:  # a unit is never split
        units = {(env, comp) if by_component else env for (env, comp), mine in zip(checks, part, strict=True) if mine}
        others = {(env, comp) if by_component else env for (env, comp), mine in zip(checks, part, strict=True) if not mine}
        assert not units & others


@pytest.mark.parametrize("text", ["0/3", "4/3", "2", "a/b", "1/0", "1/-2"])
def test_a_shard_that_cannot_be_is_one_line(tmp_path, text):
    environment_file(tmp_path / "environments", "one")
    done = run_custom_checks(tmp_path, '''
        @pytest.mark.morning
        @check(id="api.shard-only", **COMMON)
        def test_only(env):
            expect("measured", True, "==", True)
    ''', "-m", "morning", "--env", "one", "--shard", text)
    assert done.returncode == 4
    assert done.stderr.strip().splitlines() == [f"ERROR: --shard {text!r}: give K/N with 1 <= K <= N (the 2nd of 4 shards: --shard 2/4)"]


def test_a_shard_left_with_nothing_says_so_and_passes(tmp_path):
    environment_file(tmp_path / "environments", "one")
    body = '''
        @pytest.mark.morning
        @check(id="api.shard-only", **COMMON)
        def test_only(env):
            expect("measured", True, "==", True)
    '''
    first = run_custom_checks(tmp_path, body, "-m", "morning", "--env", "one", "--shard", "1/2")
    second = run_custom_checks(tmp_path, body, "-m", "morning", "--env", "one", "--shard", "2/2")
    assert first.returncode == 0 and "1 passed" in first.stdout
    assert second.returncode == 0, second.stdout
    assert "shard 2/2: none of this selection's checks falls to this shard" in second.stdout


def test_merge_of_what_is_not_a_run_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "report", "--merge", str(tmp_path / "empty"), "--into",
                           str(tmp_path / "fleet")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"entmoot-ops: {tmp_path / 'empty'}: no summary.json: not the reports of a run "
                                                "of checks (name each shard's --reports-dir)"]


def _verdicts(reports: Path) -> set[tuple[str, str]]:
    cases = ET.parse(reports / "junit.xml").getroot().iter("testcase")
    return {(f"{case.get('classname')}::{case.get('name')}",
             "failure" if case.find("failure") is not None else "error" if case.find("error") is not None else
             "skipped" if case.find("skipped") is not None else "passed") for case in cases}


def test_two_shards_of_a_fleet_merge_into_the_whole_run(sandbox, run_checks, tmp_path):
    """A fleet of three environments (the sandbox under three names), one of its checks failing everywhere: the two
    shards' reports, merged, hold the verdicts of the run of the whole fleet, and the merge fails as that run does."""
    fleet = tmp_path / "fleet-environments"
    fleet.mkdir()
    for name in ("fleet-a", "fleet-b", "fleet-c"):
        shutil.copy(ROOT / "environments" / "sandbox.toml", fleet / f"{name}.toml")
    selection = ("-m", "morning", "--environments-dir", str(fleet), "--env", "fleet-a", "--env", "fleet-b", "--env", "fleet-c")
    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        settle(sandbox)
        whole = run_checks(*selection)
        parts = [run_checks(*selection, "--shard", f"{k}/2") for k in (1, 2)]
    assert whole.returncode == 1 and whole.outcome("rds.free-storage") == "fail"
    assert sorted(len(part.results) for part in parts) == [20, 40]  # whole environments: two in one shard, one in the other
    merged = tmp_path / "merged"
    done = subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "report", "--merge", *(str(p.reports) for p in parts),
                           "--into", str(merged)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr  # a check of the fleet failed, as in the whole run
    assert _verdicts(merged) == _verdicts(whole.reports)
    summary, whole_summary = (json.loads((d / "summary.json").read_text()) for d in (merged, whole.reports))
    assert summary["counts"] == whole_summary["counts"]
    assert [(c["environment"], c["id"], c["outcome"]) for c in summary["checks"]] == \
        [(c["environment"], c["id"], c["outcome"]) for c in whole_summary["checks"]]
    assert summary["table"]["rds.free-storage"] == {"fleet-a": "fail", "fleet-b": "fail", "fleet-c": "fail"}
    assert "rds.free-storage          FAIL     FAIL     FAIL" in done.stdout
    results = list((merged / "allure-results").glob("*-result.json"))
    whole_results = list((whole.reports / "allure-results").glob("*-result.json"))
    assert len(results) == len(whole_results) + 1  # and the fleet's table, a result of its own
    assert (merged / "fleet.md").read_text().count("| FAIL | FAIL | FAIL |") == 1
    printed = next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("the Allure report of the fleet"))
    if shutil.which("npm") and shutil.which("java"):  # Allure 2's command line, as tests/test_reports.py runs it
        report = subprocess.run([*printed.split(), "--tools", str(ROOT / "reports" / ".tools"), "--history", str(tmp_path / "history")],
                                cwd=ROOT, capture_output=True, text=True, timeout=600,
                                env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
        assert report.returncode == 0, report.stdout + report.stderr
        assert (merged / "allure-report" / "index.html").is_file()
