"""Reports: junit for CI, Allure results an incident review can read, xdist, the terminal summary."""

from __future__ import annotations

import json
import re

from conftest import api_traffic, settle


def _results(run) -> list[dict]:
    return [json.loads(p.read_text()) for p in (run.reports / "allure-results").glob("*-result.json")]


def test_allure_results_carry_labels_links_evidence_and_categories(sandbox, run_checks):
    with sandbox.fault("api_degraded"):
        settle(sandbox)
        run = run_checks("-m", "morning")
    results = {next(label["value"] for label in r["labels"] if label["name"] == "check_id"): r for r in _results(run)}
    health = results["api.health"]
    assert health["status"] == "failed"
    assert health["statusDetails"]["message"].startswith("health status: measured degraded, threshold in {healthy, ok}")
    assert health["name"] == "api.health: API reports healthy, and so does each of its components [sandbox]"
    assert any(link["url"].endswith("#morning-checklist-start-of-business-day") for link in health["links"])
    assert {"name": "remediation", "value": "api.investigate-health"} in health["labels"]
    assert any(a["name"] == "GET /health" for a in health["attachments"])
    plan_step = next(s for s in health["steps"] if s["name"].startswith("Remediation plan: api.investigate-health"))
    assert plan_step["attachments"]
    assert results["rds.free-storage"]["status"] == "passed"
    directory = run.reports / "allure-results"
    categories = json.loads((directory / "categories.json").read_text())
    assert [c["name"] for c in categories][:3] == ["Fixed by a remediation (something was wrong)", "Threshold breached", "Misconfigured"]
    assert "sandbox.ecs=entmoot-sandbox/entmoot-api" in (directory / "environment.properties").read_text()


def test_unreachable_dependency_is_broken_in_allure(sandbox, run_checks):
    sandbox.component("redis", "stop")
    try:
        run = run_checks("-m", "morning", "-k", "redis_reachable")
    finally:
        sandbox.component("redis", "start")
    (result,) = _results(run)
    assert result["status"] == "broken"
    message = result["statusDetails"]["message"]
    assert message.startswith("Redis unreachable: ") and "\n-> fix: check that Redis is up and reachable" in message, message


def test_several_workers_and_the_summary_table(run_checks):
    run = run_checks("-m", "morning", "-n", "2")
    assert run.returncode == 0, run.output[-3000:]
    assert len(run.results) == 20
    rows = [line for line in run.output.splitlines() if line.startswith("PASS ")]
    assert len(rows) == 20 and any("running tasks 3 == desired 3" in row for row in rows), rows
    assert "checks: 20 pass" in run.output
    assert "…" not in run.output  # wrapped, never cut


def test_one_run_per_environment_named(run_checks, environments):
    directory = environments("second")
    (directory / "sandbox.toml").write_text((directory / "second.toml").read_text())
    run = run_checks("-m", "morning", "-k", "api_health", "--env", "sandbox", "--env", "second", "--environments-dir", str(directory))
    assert sorted(r.nodeid.split("[")[1] for r in run.results) == ["sandbox]", "second]"]
    assert run.returncode == 0


def test_allure_report_is_one_offline_file_with_a_trend_across_runs(sandbox, run_checks, tmp_path):
    """The page opens from file:// (no data fetched beside it), sends nothing to the internet (no analytics), and
    each run's report carries the trend of the runs before it."""
    import base64
    import re
    import shutil
    import subprocess
    import sys

    import pytest

    from conftest import ROOT

    if not (shutil.which("npm") and shutil.which("java")):
        pytest.skip("npm and java are needed for the Allure 2 command line")
    output, history = tmp_path / "html", tmp_path / "history"
    for _ in range(2):
        run = run_checks("-m", "morning", "-k", "api_health")
        results = run.reports / "allure-results"
        assert len(list(results.glob("*-result.json"))) == 1  # each run starts from clean results
        completed = subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "report", "--results", str(results),
                                    "--output", str(output), "--tools", str(ROOT / "reports" / ".tools"), "--history", str(history)],
                                   cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert completed.returncode == 0, completed.stderr
        assert "generating the single-file report ..." in completed.stderr  # long steps say what they are doing
    assert [p.name for p in output.iterdir()] == ["index.html"]
    page = (output / "index.html").read_text()
    assert not re.findall(r"""(?:src|href)=["']https?:""", page) and "googletagmanager" not in page
    embedded = dict(re.findall(r"d\('([^']+)','([^']*)'\)", page))
    assert "data/categories.json" in embedded or any(name.startswith("widgets/") for name in embedded)
    trend = json.loads(base64.b64decode(embedded["widgets/history-trend.json"]))
    assert len(trend) == 2 and all(point["data"]["passed"] == 1 for point in trend), trend
    cases = [json.loads(base64.b64decode(data)) for name, data in embedded.items() if name.startswith("data/test-cases/")]
    coverage = next(case for case in cases if case["name"] == "Runbook coverage")
    assert coverage["status"] == "unknown" and "headings covered" in coverage["statusMessage"]


def test_a_failing_check_gets_a_chart_and_every_run_a_summary(sandbox, run_checks):
    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        settle(sandbox)
        run = run_checks("-m", "morning", "-k", "free_storage or service_steady", charts=True)
        everything = run_checks("-m", "morning", "-k", "error_rate", "--charts", "all")
    summary = json.loads((run.reports / "summary.json").read_text())
    assert summary["marker"] == "morning" and summary["counts"]["fail"] == 1 and summary["counts"]["pass"] == 1
    failed = next(c for c in summary["checks"] if c["id"] == "rds.free-storage")
    assert failed["outcome"] == "fail" and failed["threshold"] == "> 10.00%" and failed["remediation"] == "rds.increase-storage"
    assert failed["values"][0]["limit"] == 0.1 and failed["values"][0]["value"] < 0.1
    charts = {check: [a for a in result.get("attachments", []) if a["type"] == "image/png"]
              for check in ("rds.free-storage", "ecs.service-steady") for result in _results(run) if _check_id(result) == check}
    assert [a["name"] for a in charts["rds.free-storage"]] == ["FreeStorageSpace"]
    assert (run.reports / "allure-results" / charts["rds.free-storage"][0]["source"]).read_bytes().startswith(b"\x89PNG")
    assert charts["ecs.service-steady"] == []  # passed: no chart by default (and it has no time series either)
    (passed,) = _results(everything)
    assert everything.outcome("api.error-rate") == "pass"
    assert [a["name"] for a in passed["attachments"] if a["type"] == "image/png"] == ["ALB 5XX rate and requests per period"]


def test_report_without_results_is_one_line(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    completed = subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "report", "--results", str(tmp_path / "none")],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [f"entmoot-ops: {tmp_path / 'none'}: no Allure results; run the checks first"]


def _check_id(result: dict) -> str | None:
    return next((label["value"] for label in result["labels"] if label["name"] == "check_id"), None)


def _attachments(run, check_id: str) -> set[str]:
    result = next(r for r in _results(run) if any(label == {"name": "check_id", "value": check_id} for label in r["labels"]))
    return {a["name"] for a in result.get("attachments", [])}


def test_evidence_is_read_for_a_check_that_did_not_pass_or_on_request(sandbox, run_checks, environments):
    """A healthy morning never waits on a log query: the error logs are read for a breached error rate only, or
    with --evidence all."""
    healthy = run_checks("-m", "morning", "-k", "error_rate")
    assert healthy.outcome("api.error-rate") == "pass"
    assert _attachments(healthy, "api.error-rate") == {"ALB requests and 5XX"}
    everything = run_checks("-m", "morning", "-k", "error_rate", "--evidence", "all")
    assert "top error messages" in _attachments(everything, "api.error-rate")
    # Breached whatever other tests served meanwhile: no error rate is below 0.
    directory = environments(replace={"[thresholds]\n": "[thresholds]\nerror_rate_window_minutes = 5\nerror_rate_max = 0.0\n"})
    with sandbox.fault("api_errors", rate=1.0):
        api_traffic(sandbox, 100)
        breached = run_checks("-m", "morning", "-k", "error_rate", "--environments-dir", str(directory))
    assert breached.outcome("api.error-rate") == "fail"
    assert "top error messages" in _attachments(breached, "api.error-rate")


def test_a_fixed_check_is_a_failure_in_allure_with_its_own_category(sandbox, run_checks):
    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        settle(sandbox)
        run = run_checks("-m", "morning", "-k", "free_storage", "--remediate")
    (result,) = _results(run)
    assert result["status"] == "failed" and result["statusDetails"]["message"].startswith("FIXED fixed by rds.increase-storage")
    categories = json.loads((run.reports / "allure-results" / "categories.json").read_text())
    assert categories[0]["name"].startswith("Fixed by a remediation") and categories[0]["messageRegex"] == "(?s)FIXED .*"


def test_a_failed_check_says_its_verdict_and_shows_its_traceback_only_on_request(sandbox, run_checks):
    """pytest renders a failure's traceback with its source before any hook sees it; a check's item renders its
    one-line verdict instead, unless --tb asks for the traceback."""
    with sandbox.fault("alarm", name="entmoot-rds-cpu", reason="CPU 93% > 80%"):
        default = run_checks("-m", "morning", "--check", "alarms.none-firing")
        asked = run_checks("-m", "morning", "--check", "alarms.none-firing", "--tb", "long")
    for run in (default, asked):
        assert run.result("alarms.none-firing").outcome == "fail", run.output[-3000:]
    assert re.search(r"^FAIL alarms in ALARM: entmoot-rds-cpu \(CPU 93% > 80%\): measured 1, threshold == 0 -> remediation ", default.output,
                     re.M), default.output[-3000:]
    assert "def test_no_alarm_firing" not in default.output and "AssertionError" not in default.output, default.output[-3000:]
    # The traceback names the breach (an AssertionError carrying its finding and its remediation).
    assert "def test_no_alarm_firing" in asked.output and "Breach: alarms in ALARM" in asked.output, asked.output[-3000:]
