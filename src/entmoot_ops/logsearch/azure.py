"""Azure Monitor Logs (``azure-monitor-query``): one KQL query per question against a Log Analytics workspace.

The runbook's ``AzureDiagnostics | where TimeGenerated > ago(1h) | summarize count() by Level`` counts levels of
every resource in the workspace; here the API's own rows (its container app's console log, one JSON line each) are
read within the window, newest first, a bounded number, and grouped here. Credentials come from
DefaultAzureCredential's chain (environment, workload identity, managed identity, Azure CLI...).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from entmoot_ops.errors import ConfigError, DependencyError
from entmoot_ops.logsearch.model import Entry, ErrorGroups, SlowPaths, group_errors, group_slow
from entmoot_ops.probes.cloudwatch import Window
from entmoot_ops.redaction import excerpt

if TYPE_CHECKING:
    from entmoot_ops.clients import Clients

ROWS_PER_PAGE = 1000
DEPENDENCY = "Azure Monitor Logs"


class AzureMonitor:
    def __init__(self, clients: Clients):
        self.settings = clients.env.logs
        self.azure = clients.env.logs.azure
        self.timeout = clients.env.timeouts.read_seconds
        self._client = None

    def _logs(self):  # noqa: ANN202 - azure.monitor.query.LogsQueryClient, imported on use
        if self._client is None:
            try:
                from azure.identity import DefaultAzureCredential
                from azure.monitor.query import LogsQueryClient
            except ModuleNotFoundError:
                raise ConfigError("logs backend 'azure' needs azure-monitor-query and azure-identity",
                                  fix="pip install 'entmoot-ops[azure]'") from None

            # The chain logs each credential it tried, over a dozen lines: the one line raised below says it.
            logging.getLogger("azure.identity").setLevel(logging.ERROR)
            options: dict[str, Any] = {"endpoint": self.azure.endpoint} if self.azure.endpoint else {}
            self._client = LogsQueryClient(DefaultAzureCredential(), **options)
        return self._client

    def _query(self, condition: str) -> str:
        a = self.azure
        return (f'{a.table}\n| where {a.service_column} == "{a.service_name}"\n| extend entry = parse_json({a.message_column})\n'
                f"| where {condition}\n| project TimeGenerated, {a.message_column}\n| order by TimeGenerated desc\n"
                f"| take {self.settings.max_pages * ROWS_PER_PAGE}")

    def _read(self, window: Window, condition: str) -> tuple[list[Entry], bool]:
        import azure.core.exceptions
        from azure.monitor.query import LogsQueryStatus

        bound = self.settings.max_pages * ROWS_PER_PAGE
        try:
            response = self._logs().query_workspace(self.azure.workspace_id, self._query(condition),
                                                    timespan=(window.start, window.end), server_timeout=max(1, round(self.timeout)))
        except azure.core.exceptions.HttpResponseError as exc:
            message = excerpt((exc.message or type(exc).__name__).splitlines()[0], 300)
            if exc.status_code in (None, 401, 403):  # no token from the chain (no status), or one the workspace refused
                raise DependencyError(DEPENDENCY, message if exc.status_code is None else f"{exc.status_code}: {message}", reachable=True,
                                      fix="give this host an Azure identity DefaultAzureCredential finds (AZURE_CLIENT_ID/"
                                          "AZURE_TENANT_ID/AZURE_CLIENT_SECRET, a managed identity, or `az login`) with "
                                          "Log Analytics Reader on the workspace") from None
            raise DependencyError(DEPENDENCY, f"{exc.status_code}: {message}", reachable=True) from None
        except azure.core.exceptions.ServiceRequestError as exc:
            raise DependencyError(DEPENDENCY, excerpt(str(exc).splitlines()[0], 300)) from None
        if response.status != LogsQueryStatus.SUCCESS:
            raise DependencyError(DEPENDENCY, f"partial answer: {response.partial_error}", reachable=True)
        entries = []
        for row in response.tables[0].rows if response.tables else []:
            moment, message = row[0], row[1]
            try:
                fields = json.loads(message)
            except (TypeError, ValueError):
                continue
            at = moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
            entries.append(Entry(at=at.astimezone(UTC), fields=fields if isinstance(fields, dict) else {}))
        return entries, len(entries) < bound

    def _source(self) -> str:
        return f"Azure Monitor workspace {self.azure.workspace_id} {self.azure.table}/{self.azure.service_name}"

    def error_groups(self, window: Window, limit: int) -> ErrorGroups:
        entries, complete = self._read(window, 'tostring(entry.level) == "ERROR"')
        return group_errors(entries, limit=limit, complete=complete, source=self._source(), window=window, api_calls=1)

    def slow_paths(self, window: Window, min_ms: float, limit: int) -> SlowPaths:
        entries, complete = self._read(window, f"todouble(entry.duration_ms) >= {min_ms:g}")
        return group_slow(entries, min_ms=min_ms, limit=limit, complete=complete, source=self._source(), window=window, api_calls=1)
