"""One environment: its sections, each with the runbook's defaults."""

from __future__ import annotations

from typing import Literal


from entmoot_ops.config.procedures import (ChaosSettings, CloudTrailSettings, DeploySettings, HistorySettings, LoadSettings,
                                           MetricsSettings, NotifySettings, RedactionSettings, RemediationSettings,
                                           SilenceSettings, Thresholds)
from entmoot_ops.config.references import Strict
from entmoot_ops.config.services import (AlbSettings, ApiSettings, AwsSettings, EcsSettings, HostsSettings, LogsSettings,
                                         PostgresSettings, RdsSettings, RedisSettings, Timeouts, TlsSettings,
                                         Concurrency)


class Environment(Strict):
    name: str
    kind: Literal["aws", "sandbox"] = "aws"
    production: bool = False
    # Which checks read their evidence (log groups, top statements): those that did not pass, or all (--evidence).
    evidence: Literal["failures", "all"] = "failures"
    runbook_url: str = "https://github.com/entmoot/entmoot/blob/main/docs/operations-runbook.md"
    aws: AwsSettings = AwsSettings()
    timeouts: Timeouts = Timeouts()
    concurrency: Concurrency = Concurrency()
    api: ApiSettings
    ecs: EcsSettings
    rds: RdsSettings
    postgres: PostgresSettings
    redis: RedisSettings
    logs: LogsSettings
    alb: AlbSettings
    thresholds: Thresholds = Thresholds()
    cloudtrail: CloudTrailSettings = CloudTrailSettings()
    deploy: DeploySettings = DeploySettings()
    remediation: RemediationSettings = RemediationSettings()
    load: LoadSettings = LoadSettings()
    chaos: ChaosSettings = ChaosSettings()
    notify: NotifySettings = NotifySettings()
    metrics: MetricsSettings = MetricsSettings()
    history: HistorySettings = HistorySettings()
    silences: SilenceSettings = SilenceSettings()
    hosts: HostsSettings = HostsSettings()
    tls: TlsSettings = TlsSettings()
    redaction: RedactionSettings = RedactionSettings()


