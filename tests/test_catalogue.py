"""The check catalogue (entmoot-ops checks) and the runbook coverage (entmoot-ops coverage), as a user runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import ROOT
from entmoot_ops import coverage
from entmoot_ops.check import CHECKLISTS, SEVERITIES
from entmoot_ops.pytest_plugin.selection import CHECK_ID
from entmoot_ops.remediation import REGISTRY
from entmoot_ops.runbook import SECTIONS


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entmoot_ops.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_catalogue_lists_every_check_with_its_metadata():
    listed = json.loads(_cli("checks", "--json").stdout)
    declared = {i for path in (ROOT / "checks").glob("test_*.py") for i in CHECK_ID.findall(path.read_text())}
    ids = [entry["id"] for entry in listed]
    assert len(ids) == len(set(ids)) and set(ids) >= declared and len(ids) >= 80
    import remediations  # noqa: F401

    for entry in listed:
        assert entry["markers"] and set(entry["markers"]) <= set(CHECKLISTS), entry
        assert entry["severity"] in SEVERITIES and entry["section"] in SECTIONS and entry["remediation"] in REGISTRY, entry
        assert entry["title"] and entry["source"].startswith("checks/test_"), entry
    morning = json.loads(_cli("checks", "--marker", "morning", "--json").stdout)
    assert {e["id"] for e in morning} == {e["id"] for e in listed if "morning" in e["markers"]} and "api.error-rate" in {e["id"] for e in morning}
    table = _cli("checks", "--marker", "weekly").stdout.splitlines()
    assert table[0].split() == ["ID", "SEVERITY", "MARKERS", "RUNBOOK", "SECTION", "REMEDIATION", "TITLE"]
    assert any(line.startswith("postgres.vacuum-fresh ") for line in table)


def test_an_unknown_checklist_is_one_line_with_the_closest_name():
    completed = _cli("checks", "--marker", "mornin")
    assert completed.returncode == 4 and completed.stdout == ""
    assert completed.stderr.strip().splitlines() == [
        "entmoot-ops: no checklist named mornin; did you mean morning? (one of: " + ", ".join(CHECKLISTS) + ")"]


def test_coverage_maps_every_heading_and_names_what_nothing_covers():
    rows = json.loads(_cli("coverage", "--json").stdout)
    shipped = coverage.headings(coverage.shipped_runbook())
    assert [r["heading"] for r in rows] == [h.title for h in shipped] and len(rows) > 30
    by_title = {r["heading"]: r for r in rows}
    assert "api.error-rate" in by_title["High API Error Rate"]["checks"]
    assert "rds.increase-storage" in by_title["Alert: Disk Space Low (<10%)"]["remediations"]
    assert "kill-redis" in by_title["Redis Connection Issues"]["experiments"]
    assert not by_title["Critical Contacts"]["covered"]
    assert by_title["Daily Operations"]["covered"]  # through its procedures
    last = _cli("coverage").stdout.strip().splitlines()[-1]
    uncovered = [r["heading"] for r in rows if not r["covered"]]
    assert last == f"{len(rows) - len(uncovered)} of {len(rows)} headings covered; nothing covers: {', '.join(uncovered)}"


def test_a_heading_inside_a_code_block_is_a_shell_comment():
    text = "## Section\n### Procedure\n```bash\n# 1. Check service status\n## not a heading\n```\n### Another\n"
    assert [(h.level, h.title, h.parent) for h in coverage.headings(text)] == [
        (2, "Section", None), (3, "Procedure", "section"), (3, "Another", "section")]


def test_the_coverage_and_the_help_read_as_plain_text_in_a_terminal():
    table = _cli("coverage").stdout
    assert not re.search(r"&\w+;|``|\|", table), table[:2000]
    assert re.search(r"^Daily Operations +\(through 2 procedures\)$\n^  Morning Checklist \(Start of Business Day\) +\S", table, re.M)
    for command in ((), ("sandbox",), ("sandbox", "fault"), ("chaos",), ("scale",), ("coverage",), ("report",)):
        shown = _cli(*command, "--help").stdout
        assert "usage: entmoot-ops" in shown and "``" not in shown, shown
