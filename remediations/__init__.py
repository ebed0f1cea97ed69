"""Remediations, by component. Importing this package registers them (see entmoot_ops.remediation)."""

from remediations import api, chaos, ecs, evening, hosts, incident, jobs, maintenance, postgres, rds, redis, replication, vertical  # noqa: F401
