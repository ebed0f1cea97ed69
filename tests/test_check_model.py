"""The check model: verdict messages, no silent pass on missing data, metadata validated at collection."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from entmoot_ops.outcomes import wrap
from entmoot_ops.check import CheckRun, CheckSpec, current_run, expect, expect_present, format_value
from conftest import ROOT


@pytest.fixture
def run():
    spec = CheckSpec(id="x.y", title="t", section="quick-reference", severity="high", remediation="fix.it", depends=("api",))
    run = CheckRun(spec=spec, env="sandbox")
    token = current_run.set(run)
    yield run
    current_run.reset(token)


def test_breach_names_value_threshold_window_and_remediation(run):
    with pytest.raises(AssertionError) as failure:
        expect("error rate", 0.034, "<", 0.01, unit="%", window="last 60 min")
    assert str(failure.value) == "error rate: measured 3.40%, threshold < 1.00% over last 60 min -> remediation fix.it"
    assert run.readings[0].ok is False


def test_pass_is_recorded(run):
    expect("replay lag", 0.25, "<", 60, unit="s")
    assert (run.readings[0].measured, run.readings[0].threshold) == ("0.25 s", "< 60 s")


def test_no_data_is_an_error_not_a_pass(run):
    with pytest.raises(LookupError, match="free storage: no data measured in last 15 min; cannot judge"):
        expect("free storage", None, ">", 0.1, window="last 15 min")


def test_value_formatting():
    assert format_value(("healthy", "ok"), "") == "{healthy, ok}"
    assert format_value(12.5, "min") == "12.5 min"
    assert format_value(True, "") == "yes"


def test_a_reading_that_holds_against_a_constant_says_only_the_value(run):
    expect("PRIMARY deployments", 1, "==", 1)
    expect("replica1 in recovery", True, "==", True)
    expect("running tasks", 3, "==", 3, against="desired")
    expect_present("version in /health", "1.4.2")
    assert [r.describe() for r in run.readings] == ["PRIMARY deployments 1", "replica1 in recovery yes",
                                                   "running tasks 3 == desired 3", "version in /health 1.4.2"]
    with pytest.raises(AssertionError, match=r"^version in /health: measured \(missing\), threshold present -> remediation fix.it$"):
        expect_present("version in /health", None)


def test_invalid_metadata_is_a_collection_error(tmp_path):
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "test_bad.py").write_text(textwrap.dedent('''
        import pytest
        from entmoot_ops.check import check

        @pytest.mark.morning
        @check(id="bad.remediation", title="t", section="quick-reference", severity="high", remediation="no.such", depends=("api",))
        def test_unknown_remediation(env):
            pass

        @pytest.mark.morning
        @check(id="bad.section", title="t", section="no-such-heading", severity="high", remediation="no.such", depends=("api",))
        def test_unknown_section(env):
            pass

        @check(id="bad.marker", title="t", section="quick-reference", severity="urgent", remediation="no.such", depends=("api",))
        def test_no_checklist(env):
            pass

        @pytest.mark.morning
        @check(id="bad.depends", title="t", section="quick-reference", severity="high", remediation="api.investigate-health",
               depends=("the-internet",))
        def test_unknown_dependency(env):
            pass

        def test_undeclared(env):
            pass
    '''))
    completed = subprocess.run([sys.executable, "-m", "pytest", str(checks), "--rootdir", str(tmp_path), "-c", "/dev/null",
                                "--environments-dir", str(ROOT / "environments")],
                               cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 4, completed.stdout + completed.stderr
    for expected in ("test_unknown_remediation[sandbox]: remediation 'no.such' is not registered",
                     "test_unknown_section[sandbox]: runbook section 'no-such-heading' is unknown",
                     "test_no_checklist[sandbox]: severity 'urgent' is not one of critical, high, medium, low",
                     "test_unknown_dependency[sandbox]: depends ('the-internet',): name what it depends on, from api, traffic",
                     "test_undeclared[sandbox]: not declared with entmoot_ops.check.check(...)"):
        assert expected in completed.stderr, completed.stderr


def test_a_number_stays_with_its_unit_when_a_line_wraps():
    text = "highest mean time of the top statements (a long statement text that fills the line up) 280.04 ms < 1000 ms"
    for width in range(20, len(text)):
        for line in wrap(text, width):
            assert not re.match(r"^(ms|s|min)\b", line), (width, line)
