"""Environment configuration: one strict TOML file per environment, runbook thresholds as defaults.

Secrets and per-machine endpoints are *references* (``env:NAME`` or a Secrets Manager ARN), resolved at use
time by :mod:`entmoot_ops.secrets`; a literal secret in a TOML file is a validation error. The models are in
``references`` (kinds of value), ``services`` and ``procedures`` (the sections), ``environment``; reading a file is
``loading``.
"""

from entmoot_ops.config.environment import Environment
from entmoot_ops.config.loading import environments_dir, load_environment, read_toml, validated
from entmoot_ops.config.procedures import (ChangeWindow, CloudTrailSettings, HistorySettings, NotifySettings, RedactionSettings,
                                           SilenceSettings, Thresholds)
from entmoot_ops.config.references import SECRET_PATTERN, Ratio, Strict
from entmoot_ops.config.services import PostgresHost, RedisHost, Timeouts

__all__ = ["SECRET_PATTERN", "ChangeWindow", "CloudTrailSettings", "Environment", "HistorySettings", "NotifySettings", "PostgresHost", "Ratio",
           "RedactionSettings", "RedisHost", "SilenceSettings", "Strict", "Thresholds", "Timeouts", "environments_dir", "load_environment",
           "read_toml", "validated"]
