"""The GCP Cloud Logging and Azure Monitor backends, through their real SDKs (google-cloud-logging, azure-monitor-query
with azure-identity's DefaultAzureCredential) against loopback servers that speak their REST APIs, with credentials
from each SDK's standard chain; bad or missing settings and credentials end in one line."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment
from entmoot_ops.errors import ConfigError, DependencyError
from entmoot_ops.logsearch import for_environment
from entmoot_ops.probes.cloudwatch import Window

from conftest import background_traffic, settle
from loopback_logs import AzureMonitor, GcpLogging

LOGS = '[logs]\ngroup = "/ecs/entmoot-sandbox"\n'
NOW = datetime.now(UTC)


def _line(i: int, *, level: str = "INFO", path: str = "/api/projects/1", ms: float = 10.0, error: str | None = None) -> dict:
    line = {"level": level, "request_id": f"req-{i}", "method": "GET", "path": path, "status": 500 if error else 200, "duration_ms": ms}
    return {**line, "error": error} if error else line


def _lines(now: datetime) -> list[tuple[datetime, dict]]:
    return [*((now - timedelta(seconds=60 - i), _line(i)) for i in range(20)),
            *((now - timedelta(seconds=50 - i), _line(100 + i, level="ERROR", error="DatabaseError: QueuePool limit reached")) for i in range(6)),
            *((now - timedelta(seconds=40 - i), _line(200 + i, level="ERROR", error="ReadTimeout: elevation API")) for i in range(3)),
            *((now - timedelta(seconds=30 - i), _line(300 + i, path="/api/buildings", ms=1500.0 + 100 * i)) for i in range(10)),
            (now - timedelta(hours=2), _line(900, level="ERROR", error="DatabaseError: long ago"))]


def _window() -> Window:
    return Window(NOW - timedelta(minutes=5), NOW + timedelta(seconds=5), 60)


def _clients(environments, settings: str, name: str = "sandbox") -> Clients:
    return Clients(load_environment(name, environments(name, replace={LOGS: settings})))


@pytest.fixture
def gcp(tmp_path, monkeypatch, sandbox):
    server = GcpLogging()
    for at, line in _lines(NOW):
        server.add(at, line)
    server.add(NOW, _line(999, level="ERROR", error="another service's error"), service="other-service")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(server.credentials_file(tmp_path)))
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    yield server
    server.server.close()


def _gcp_settings(server: GcpLogging, extra: str = "") -> str:
    return f'[logs]\nbackend = "gcp"\n{extra}[logs.gcp]\nproject = "entmoot"\nendpoint = "{server.server.url}"\n'


def test_gcp_groups_errors_and_slow_paths_of_the_api_service_in_the_window(gcp, environments):
    search = for_environment(_clients(environments, _gcp_settings(gcp)))
    groups = search.error_groups(_window(), 10)
    assert [(g.message, g.count, g.sample_request_id) for g in groups.groups] == [
        ("DatabaseError: QueuePool limit reached", 6, "req-100"), ("ReadTimeout: elevation API", 3, "req-200")]
    assert groups.errors == 9 and groups.complete and groups.share("database") == pytest.approx(6 / 9)
    assert groups.source == "GCP Cloud Logging projects/entmoot cloud_run_revision/entmoot-api"
    slow = search.slow_paths(_window(), 1000, 5)
    assert [(p.path, p.requests, p.p95_ms) for p in slow.paths] == [("/api/buildings", 10, 2400.0)]
    assert gcp.server.calls.count("/token") == 1 and gcp.server.calls.count("/v2/entries:list") == 2
    # The filter the SDK sent: the service, severity >= ERROR (not the runbook's "= ERROR") and the window.
    assert gcp.server.calls.paths  # requests were real HTTP


def test_gcp_reads_a_bounded_number_of_pages(gcp, environments, monkeypatch):
    from entmoot_ops.logsearch import gcp as gcp_backend

    monkeypatch.setattr(gcp_backend, "PAGE_SIZE", 2)
    search = for_environment(_clients(environments, _gcp_settings(gcp, "max_pages = 2\n")))
    groups = search.error_groups(_window(), 10)
    assert groups.errors == 4 and not groups.complete and groups.api_calls == 2
    assert gcp.server.calls.count("/v2/entries:list") == 2


def test_gcp_without_credentials_is_one_line(gcp, environments, monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud login either
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # not on GCE: do not wait for a metadata server
    search = for_environment(_clients(environments, _gcp_settings(gcp)))
    with pytest.raises(DependencyError) as failure:
        search.error_groups(_window(), 10)
    assert str(failure.value).startswith("GCP Cloud Logging refused the request: Your default credentials were not found")
    assert "\n" not in str(failure.value) and "gcloud auth application-default login" in failure.value.fix


def test_a_backend_without_its_settings_is_one_line(environments):
    with pytest.raises(ConfigError) as failure:
        load_environment("sandbox", environments(replace={LOGS: '[logs]\nbackend = "azure"\n'}))
    assert "logs backend 'azure' needs [logs.azure]" in str(failure.value) and "\n" not in str(failure.value)


def test_the_error_triage_reads_gcp_logs_end_to_end(gcp, sandbox, run_checks, environments):
    for i in range(40):
        gcp.add(datetime.now(UTC), _line(500 + i, level="ERROR", error="DatabaseError: QueuePool limit of size 10 overflow 0 reached"))
    directory = environments(replace={LOGS: _gcp_settings(gcp), "[thresholds]\n": "[thresholds]\nincident_window_minutes = 1\n"})
    with background_traffic(sandbox):
        time.sleep(12)
        with sandbox.fault("api_errors", rate=0.3, message="ignored: the verdict reads GCP's logs"):
            time.sleep(3)
            settle(sandbox)
            run = run_checks("-m", "incident", "--check", "incident.api-errors", "--environments-dir", str(directory),
                             env={"GOOGLE_APPLICATION_CREDENTIALS": str(gcp.credentials_file(directory))})
    message = run.result("incident.api-errors").message
    assert re.search(r"most likely cause: Database connection pool exhausted \(100% of errors are pool/database errors", message), \
        run.output[-3000:]


@pytest.fixture
def azure(tmp_path, monkeypatch, sandbox):
    server = AzureMonitor(tmp_path)
    for at, line in _lines(NOW):
        server.add("ContainerAppConsoleLogs_CL", at, line)
    server.add("ContainerAppConsoleLogs_CL", NOW, _line(999, level="ERROR", error="another app's error"), service="other-app")
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**sandbox.env, **server.environment()}.items():
        monkeypatch.setenv(name, value)
    yield server
    server.close()


def _azure_settings(server: AzureMonitor) -> str:
    return f'[logs]\nbackend = "azure"\n[logs.azure]\nworkspace_id = "ws-entmoot"\nendpoint = "{server.server.url}/v1"\n'


def test_azure_groups_errors_and_slow_paths_with_one_query_each(azure, environments):
    search = for_environment(_clients(environments, _azure_settings(azure)))
    groups = search.error_groups(_window(), 10)
    assert [(g.message, g.count, g.sample_request_id) for g in groups.groups] == [
        ("DatabaseError: QueuePool limit reached", 6, "req-100"), ("ReadTimeout: elevation API", 3, "req-200")]
    assert groups.errors == 9 and groups.complete and groups.share("timeout") == pytest.approx(3 / 9)
    slow = search.slow_paths(_window(), 1000, 5)
    assert [(p.path, p.requests, p.p95_ms) for p in slow.paths] == [("/api/buildings", 10, 2400.0)]
    assert azure.server.calls.count("/v1/workspaces/ws-entmoot/query") == 2 and azure.identity.calls.count("/msi/token") == 1


def test_azure_without_an_identity_is_one_line(azure, environments, monkeypatch):
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:9")  # IMDS refused at once, not waited for
    search = for_environment(_clients(environments, _azure_settings(azure)))
    started = time.monotonic()
    with pytest.raises(DependencyError) as failure:
        search.error_groups(_window(), 10)
    assert str(failure.value).startswith("Azure Monitor Logs refused the request: DefaultAzureCredential failed to retrieve a token")
    assert "\n" not in str(failure.value) and "AZURE_CLIENT_ID" in failure.value.fix
    assert time.monotonic() - started < 30
