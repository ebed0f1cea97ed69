"""A fleet across runners: --shard K/N parts a selection the same way on every runner, and `entmoot-ops report
--merge` joins the parts' reports into the report the whole run would have written."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b"])
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


ONE_CHECK = '''
    @pytest.mark.morning
    @check(id="api.shard-only", **COMMON)
    def test_only(env):
        expect("measured", True, "==", True)
'''
TWO_GROUPS = '''
    @pytest.mark.morning
    @check(id="api.shard-first", **COMMON)
    def test_first(env):
        expect("measured", True, "==", True)

    @pytest.mark.morning
    @check(id="rds.shard-second", **COMMON)
    def test_second(env):
        expect("measured", False, "==", True)
'''


@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["one-process", "xdist"])
def test_a_shard_left_with_nothing_says_so_writes_empty_reports_and_passes(tmp_path, workers):
    environment_file(tmp_path / "environments", "one")
    first = run_custom_checks(tmp_path, ONE_CHECK, "-m", "morning", "--env", "one", "--shard", "1/2", *workers)
    assert first.returncode == 0 and "1 passed" in first.stdout, first.stdout[-2000:]
    empty = tmp_path / "empty-shard"
    second = run_custom_checks(tmp_path, ONE_CHECK, "-m", "morning", "--env", "one", "--shard", "2/2", "--reports-dir", str(empty), *workers)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "shard 2/2: none of this selection's checks falls to this shard" in second.stdout
    summary = json.loads((empty / "summary.json").read_text())
    assert summary["checks"] == [] and summary["run"]["shard"] == "2/2" and summary["run"]["environments"] == ["one"]
    assert ET.parse(empty / "junit.xml").getroot().find("testsuite").get("tests") == "0"


def test_the_merge_names_a_missing_shard_and_refuses_what_is_not_one_run(tmp_path):
    """One environment, two check groups: two shards of one check each. Merged without its second shard, the fleet
    is not verified (exit 1, the shard named); a shard given twice, a run without --shard among shards, and shards of
    another selection are not one run's (exit 2, one line)."""
    environment_file(tmp_path / "environments", "one")
    shard = {}
    for k in (1, 2):
        shard[k] = tmp_path / f"shard-{k}"
        done = run_custom_checks(tmp_path, TWO_GROUPS, "-m", "morning", "--env", "one", "--shard", f"{k}/2", "--reports-dir", str(shard[k]))
        assert "1 deselected" in done.stdout or "deselected" in done.stdout, done.stdout[-2000:]
    whole = tmp_path / "whole"
    run_custom_checks(tmp_path, TWO_GROUPS, "-m", "morning", "--env", "one", "--reports-dir", str(whole))
    other = tmp_path / "other-selection"
    run_custom_checks(tmp_path, TWO_GROUPS, "-m", "morning", "--env", "one", "--check", "api.shard-first", "--shard", "2/2",
                      "--reports-dir", str(other))

    def merge(*directories: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "report", "--merge", *map(str, directories), "--into",
                               str(tmp_path / "fleet")], capture_output=True, text=True, timeout=120)

    complete = merge(shard[1], shard[2])
    assert complete.returncode == 1 and "rds.shard-second  FAIL" in complete.stdout, complete.stdout + complete.stderr
    first_only = next(d for d in (shard[1], shard[2]) if "api.shard-first" in (d / "summary.json").read_text())
    alone = merge(first_only)
    assert alone.returncode == 1, alone.stdout + alone.stderr
    assert f"missing: shard {'2/2' if first_only == shard[1] else '1/2'}: no reports given for it" in alone.stdout
    assert json.loads((tmp_path / "fleet" / "summary.json").read_text())["missing"] == ["2/2" if first_only == shard[1] else "1/2"]
    for directories, said in (((shard[1], shard[1]), "is given twice"), ((shard[1], whole), "is not a shard"),
                              ((shard[1], other), "ran another selection")):
        refused = merge(*directories)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stdout + refused.stderr
        assert said in refused.stderr, refused.stderr


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
    # The Allure command it prints is `entmoot-ops report --results DIR --output DIR`, which tests/test_reports.py runs.
    assert f"the Allure report of the fleet: entmoot-ops report --results {merged / 'allure-results'} --output " \
           f"{merged / 'allure-report'}" in done.stdout
