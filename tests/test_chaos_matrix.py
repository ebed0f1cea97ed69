"""The detection matrix: every sandbox fault has a row, and the matrix reports catches, misses and false alarms
in JSON, HTML and junit (the whole matrix is bench/chaos_matrix.py: too long for CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from entmoot_ops.chaos import experiment_catalogue, matrix
from entmoot_ops.check import DEPENDENCIES
from entmoot_ops.sandbox.faults import FAULTS

from conftest import ROOT


def _known_check_ids() -> set[str]:
    found = set()
    for path in (ROOT / "checks").glob("test_*.py"):
        text = path.read_text()
        found |= {part.split('"', 1)[0] for part in text.split('@check(id="')[1:]}
    return found


def test_every_sandbox_fault_has_a_row_and_every_detector_is_a_check():
    assert matrix.uncovered(set(FAULTS)) == set()
    assert {e.fault for e in matrix.EXPECTATIONS} <= set(FAULTS)
    checks = _known_check_ids()
    named = {c for e in matrix.EXPECTATIONS for c in (*e.detectors, *e.also)}
    named |= {c for e in experiment_catalogue.experiments(ROOT).values() for c in (*e.detectors, *e.also)}
    assert named <= checks, named - checks
    broken = {d for e in (*matrix.EXPECTATIONS, *experiment_catalogue.experiments(ROOT).values()) for d in e.breaks}
    assert broken <= DEPENDENCIES.keys(), broken - DEPENDENCIES.keys()
    # A blast radius is derived, never written out: a fault that breaks a dependency need not list its checks.
    assert all(not (set(e.also) & set(e.detectors)) for e in matrix.EXPECTATIONS)


def _matrix(sandbox, tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The matrix on this worker's sandbox. Its baseline is every checklist holding, whose widest window is 15 minutes
    (api.slow-endpoints): what the tests before it served there (a frozen dependency's slow requests) is forgotten."""
    sandbox.forget_traffic(900)
    output = tmp_path / "matrix"
    done = subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "chaos", "matrix", "--output", str(output), *args],
                          cwd=ROOT, env={**os.environ, "ENTMOOT_SANDBOX_STATE": str(sandbox.state_file)},
                          capture_output=True, text=True, timeout=300)
    found = json.loads((output / "matrix.json").read_text()) if (output / "matrix.json").exists() else {}
    return done, found


@pytest.mark.e2e
def test_a_few_faults_caught_with_their_latency_in_json_html_and_junit(sandbox, tmp_path):
    # A fault no check should see (a flushed cache) is held for the whole deadline: 15 s is plenty for the other two.
    done, found = _matrix(sandbox, tmp_path, "--fault", "api_auth_disabled", "--fault", "replica_paused", "--fault", "redis_flushed",
                          "--deadline", "15")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert found["summary"]["caught"] == 3 and found["summary"]["false_alarms"] == 0, found
    rows = {r["name"]: r for r in found["rows"]}
    assert 0 < rows["api_auth_disabled"]["detected"]["api.auth-enforced"] <= 15
    assert rows["redis_flushed"]["expected"] == [] and rows["redis_flushed"]["caught"]
    assert "detection matrix: 3 of 3 caught, 0 missed, 0 false alarms" in done.stdout
    html = (tmp_path / "matrix" / "matrix.html").read_text()
    assert "replication.lag" in html and "3 of 3 faults caught" in html
    assert '<img src="matrix.png"' in html and (tmp_path / "matrix" / "matrix.png").read_bytes().startswith(b"\x89PNG")
    suite = ET.parse(tmp_path / "matrix" / "matrix-junit.xml").getroot()
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert sandbox.control("GET", "state")["faults"] == []


@pytest.mark.e2e
def test_a_blind_check_shows_as_a_miss_and_fails_the_run(sandbox, tmp_path, environments):
    """postgres.connections judged against 99% cannot see 45 idle sessions (84%): the matrix says so."""
    blind = environments(replace={"[thresholds]\n": "[thresholds]\nconnections_max_ratio = 0.99\n"})
    # A miss is known only at the deadline: a short one (the 45 sessions are there within a second or two).
    done, found = _matrix(sandbox, tmp_path, "--fault", "idle_sessions", "--environments-dir", str(blind), "--deadline", "8")
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert found["summary"]["missed"] == 1 and found["rows"][0]["missed"] == ["postgres.connections"]
    assert "MISSED  idle_sessions count=45" in done.stdout
    failure = ET.parse(tmp_path / "matrix" / "matrix-junit.xml").getroot().find("testcase/failure")
    assert failure is not None and "missed by postgres.connections" in failure.get("message")


def test_an_unknown_fault_is_one_line(sandbox, tmp_path):
    done, _ = _matrix(sandbox, tmp_path, "--fault", "no_such_fault")
    assert done.returncode == 2 and done.stderr.startswith("entmoot-ops: no fault named no_such_fault (known: "), done.stderr
    assert "Traceback" not in done.stderr
