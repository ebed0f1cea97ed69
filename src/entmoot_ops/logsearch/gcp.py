"""GCP Cloud Logging (``google-cloud-logging``), the runbook's ``gcloud logging read`` as a bounded read.

The runbook's filter ``severity=ERROR AND resource.type=cloud_run_revision`` misses CRITICAL and ALERT and reads every
Cloud Run service of the project; here it is ``severity>=ERROR`` on the API's own service, within the window. Cloud
Logging has no server-side grouping in this API, so entries are read newest first, a bounded number of pages, and
grouped here. Credentials come from Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
login, or the metadata server).
"""

from __future__ import annotations

from datetime import datetime, UTC
from typing import TYPE_CHECKING

from entmoot_ops.errors import ConfigError, DependencyError
from entmoot_ops.logsearch.model import Entry, ErrorGroups, SlowPaths, group_errors, group_slow
from entmoot_ops.probes.cloudwatch import Window

if TYPE_CHECKING:
    from entmoot_ops.clients import Clients

PAGE_SIZE = 1000
DEPENDENCY = "GCP Cloud Logging"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class GcpLogging:
    def __init__(self, clients: Clients):
        self.settings = clients.env.logs
        self.gcp = clients.env.logs.gcp
        self.timeout = clients.env.timeouts.read_seconds
        self._client = None

    def _logging(self):  # noqa: ANN202 - google.cloud.logging.Client, imported on use
        if self._client is None:
            try:
                import google.auth.exceptions
                from google.cloud import logging as cloud_logging
            except ModuleNotFoundError:
                raise ConfigError("logs backend 'gcp' needs google-cloud-logging", fix="pip install 'entmoot-ops[gcp]'") from None

            options = {"api_endpoint": self.gcp.endpoint} if self.gcp.endpoint else None
            try:
                # HTTP/JSON rather than gRPC: one transport to reason about, and the reads are few.
                self._client = cloud_logging.Client(project=self.gcp.project, client_options=options, _use_grpc=False)
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise DependencyError(DEPENDENCY, str(exc).splitlines()[0], reachable=True,
                                      fix="set GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`") from None
        return self._client

    def _filter(self, window: Window, extra: str) -> str:
        return (f'resource.type="{self.gcp.resource_type}" AND resource.labels.service_name="{self.gcp.service_name}" '
                f'AND timestamp>="{_stamp(window.start)}" AND timestamp<="{_stamp(window.end)}" AND {extra}')

    def _read(self, window: Window, extra: str) -> tuple[list[Entry], bool, int]:
        import google.api_core.exceptions
        import google.auth.exceptions
        import requests

        bound = self.settings.max_pages * PAGE_SIZE
        entries: list[Entry] = []
        try:
            for entry in self._logging().list_entries(filter_=self._filter(window, extra), order_by="timestamp desc",
                                                      page_size=PAGE_SIZE):
                payload = entry.payload if isinstance(entry.payload, dict) else {"message": entry.payload}
                entries.append(Entry(at=entry.timestamp or window.end, fields=dict(payload)))
                if len(entries) == bound:  # stop at the end of the last page allowed: the next one is never asked for
                    break
        except google.api_core.exceptions.GoogleAPICallError as exc:
            raise DependencyError(DEPENDENCY, f"{exc.code}: {exc.message}", reachable=True) from None
        except google.auth.exceptions.GoogleAuthError as exc:
            raise DependencyError(DEPENDENCY, str(exc).splitlines()[0], reachable=True) from None
        except requests.RequestException as exc:
            raise DependencyError(DEPENDENCY, type(exc).__name__) from None
        pages = max(1, -(-len(entries) // PAGE_SIZE))
        return entries, len(entries) < bound, pages

    def _source(self) -> str:
        return f"GCP Cloud Logging projects/{self.gcp.project} {self.gcp.resource_type}/{self.gcp.service_name}"

    def error_groups(self, window: Window, limit: int) -> ErrorGroups:
        entries, complete, calls = self._read(window, "severity>=ERROR")
        return group_errors(entries, limit=limit, complete=complete, source=self._source(), window=window, api_calls=calls)

    def slow_paths(self, window: Window, min_ms: float, limit: int) -> SlowPaths:
        entries, complete, calls = self._read(window, f"jsonPayload.duration_ms>={min_ms:g}")
        return group_slow(entries, min_ms=min_ms, limit=limit, complete=complete, source=self._source(), window=window, api_calls=calls)
