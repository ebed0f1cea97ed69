"""Metrics for dashboards: pushed to a real Pushgateway (Debian's prometheus-pushgateway, started here on loopback)
and read back from its /metrics; and the textfile-collector file every run writes."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import settle
from entmoot_ops import metrics
from entmoot_ops.results import CheckResult
from entmoot_ops.sandbox.processes import free_port

GATEWAY = shutil.which("prometheus-pushgateway")


@pytest.fixture
def pushgateway(tmp_path):
    if GATEWAY is None:
        pytest.fail("prometheus-pushgateway is not installed (Debian package prometheus-pushgateway; .ci/run installs it)")
    url = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen([GATEWAY, f"--web.listen-address={url[7:]}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"{url}/-/ready", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline and process.poll() is None, "the Pushgateway did not start"
        time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


def _samples(text: str) -> list:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def _value(samples, name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_a_run_pushes_outcomes_readings_and_counts_grouped_by_environment_and_marker(sandbox, run_checks, environments, pushgateway,
                                                                                     tmp_path):
    textfiles = tmp_path / "textfile_collector"
    directory = environments(replace={"[thresholds]\n": f'[metrics]\npushgateway = "{pushgateway}"\ntextfile_dir = "{textfiles}"\n\n'
                                                         '[thresholds]\n'})
    with sandbox.fault("rds_low_storage", free_ratio=0.05):
        settle(sandbox)
        run = run_checks("-m", "morning", "-k", "free_storage or service_steady", "--environments-dir", str(directory))
    assert run.outcome("rds.free-storage") == "fail"
    samples = _samples(requests.get(f"{pushgateway}/metrics", timeout=5).text)
    group = {"job": "entmoot-ops", "environment": "sandbox", "marker": "morning"}
    assert _value(samples, "entmoot_check_outcome", **group, check="rds.free-storage", entmoot_check_outcome="fail") == 1
    assert _value(samples, "entmoot_check_outcome", **group, check="rds.free-storage", entmoot_check_outcome="pass") == 0
    assert _value(samples, "entmoot_check_outcome", **group, check="ecs.service-steady", entmoot_check_outcome="pass") == 1
    reading = [s for s in samples if s.name == "entmoot_check_value" and s.labels.get("check") == "rds.free-storage"]
    assert len(reading) == 1 and 0 < reading[0].value < 0.1  # a ratio, as measured
    assert _value(samples, "entmoot_check_threshold", **group, check="rds.free-storage", reading=reading[0].labels["reading"]) == 0.1
    assert _value(samples, "entmoot_run_checks", **group, outcome="fail") == 1
    assert _value(samples, "entmoot_run_checks", **group, outcome="pass") == 1
    assert _value(samples, "entmoot_run_wall_seconds", **group) > 0
    assert _value(samples, "entmoot_check_duration_seconds", **group, check="rds.free-storage") > 0
    # The same figures in the textfile-collector file of the run.
    written = (textfiles / "entmoot_sandbox_morning.prom").read_text()
    assert 'entmoot_check_outcome{check="rds.free-storage",entmoot_check_outcome="fail",environment="sandbox"} 1.0' in written


def test_an_unreachable_pushgateway_is_one_line_and_changes_no_verdict(run_checks, environments):
    closed = f"http://127.0.0.1:{free_port()}"
    directory = environments(replace={"[thresholds]\n": f'[metrics]\npushgateway = "{closed}"\ntimeout_seconds = 2\n\n[thresholds]\n'})
    run = run_checks("-m", "morning", "-k", "service_steady", "--environments-dir", str(directory))
    assert run.returncode == 0 and run.outcome("ecs.service-steady") == "pass"
    assert not (run.reports / "metrics").exists()  # no textfile_dir: no file
    lines = [line for line in run.output.splitlines() if line.startswith("metrics [sandbox]")]
    assert len(lines) == 1 and "not exported" in lines[0], run.output[-2000:]


def test_what_chaos_and_load_checks_record_is_exported_under_its_own_name(tmp_path):
    def result(check: str, recorded: list) -> CheckResult:
        return CheckResult(check_id=check, title="", env="staging", nodeid="", outcome="pass", severity="high", section="",
                           measured="", threshold="", remediation="", remediation_state="", message="", recorded=recorded)

    registry = metrics.registry("staging", [
        result("chaos.kill-redis", [["chaos_detection_seconds", 4.2, {"experiment": "kill-redis", "detector": "redis.reachable"}],
                                    ["chaos_recovery_seconds", 9.5, {"experiment": "kill-redis"}]]),
        result("load.latency-p95", [["load_p95_ms", 180.0, {"shape": "ramp"}], ["load_requests_per_second", 42.0, {"shape": "ramp"}],
                                    ["load_failure_ratio", 0.002, {"shape": "ramp"}]]),
    ], wall_seconds=12.0, finished_at=1.7e9)
    samples = _samples(metrics.textfile(tmp_path, "staging", "chaos or load", registry).read_text())
    assert _value(samples, "entmoot_chaos_detection_seconds", experiment="kill-redis", detector="redis.reachable") == 4.2
    assert _value(samples, "entmoot_chaos_recovery_seconds", experiment="kill-redis") == 9.5
    assert _value(samples, "entmoot_load_p95_ms", shape="ramp", check="load.latency-p95") == 180.0
    assert _value(samples, "entmoot_load_requests_per_second", shape="ramp") == 42.0
    assert _value(samples, "entmoot_load_failure_ratio", shape="ramp") == 0.002
