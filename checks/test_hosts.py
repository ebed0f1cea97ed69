"""Host checks, through testinfra: the on-call's host (the one the suite runs on, or a bastion) reaches what the
runbook's manual steps reach, keeps time, has the tools those steps call and room on its disks; a self-managed
PostgreSQL or Redis host runs its service, listens, and starts with a safe configuration. Every command only reads."""

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import hosts

ENDPOINTS = "important-endpoints-and-resources"


def _failing(found: list[str]) -> str:
    return f" ({'; '.join(found)})" if found else ""


@pytest.mark.hosts
@pytest.mark.morning
@check(id="hosts.reach", title="The on-call host resolves and connects to the API, PostgreSQL, Redis and AWS",
       section=ENDPOINTS, severity="critical", remediation="hosts.restore-reach",
       depends=("hosts", "api", "primary", "replica", "redis", "aws"))
def test_reach(env, oncall):
    targets = hosts.reach_targets(env.clients)
    for host in oncall:
        found = hosts.reach(host, targets, connect_seconds=env.config.timeouts.connect_seconds)
        evidence(f"reach from {hosts.host_name(host)}", [r.describe() for r in found])
        unreachable = [r.describe() for r in found if not r.connected]
        expect(f"endpoints {hosts.host_name(host)} cannot reach{_failing(unreachable)}", len(unreachable), "==", 0)


@pytest.mark.hosts
@pytest.mark.morning
@check(id="hosts.clock", title="The on-call host's clock is within a second of the environment's",
       section="morning-checklist-start-of-business-day", severity="high", remediation="hosts.sync-clock",
       depends=("hosts", "api", "aws"))
def test_clock(env, oncall):
    """CloudWatch windows and log times are read against this clock: a skewed one shifts every window."""
    limit = env.thresholds.clock_max_skew_seconds
    source, url = hosts.clock_source(env.clients)
    for host in oncall:
        ours = hosts.host_clock(host)
        # One Date header bounds its clock within a second and a round trip: sample its turns until that settles.
        skew = ours.minus(hosts.http_date_clock(env.clients.http(authenticated=False), url, timeout=env.clients.http_timeout,
                                                samples=5, until=lambda server, ours=ours: ours.minus(server).settled(limit)))
        evidence(f"clock of {hosts.host_name(host)}", {"source": f"{source} Date header ({url})", "skew_low_s": skew.low,
                                                       "skew_high_s": skew.high})
        value, how = skew.reading(limit)
        expect(f"clock skew of {hosts.host_name(host)} against the {source}'s Date, {how}", round(value, 2), "<=", limit, unit="s")


@pytest.mark.hosts
@pytest.mark.handoff
@check(id="hosts.tools", title="The tools the runbook's manual steps call exist, at versions that work",
       section="quick-commands", severity="medium", remediation="hosts.install-tools",
       depends=("hosts",))
def test_tools(env, oncall):
    wanted = env.config.hosts.tools
    for host in oncall:
        found = hosts.tools(host, list(wanted))
        evidence(f"tools on {hosts.host_name(host)}", found)
        wrong = [f"{t.name}: not on the PATH" if t.path is None else
                 f"{t.name}: no version in {t.said!r}" if t.version is None else
                 f"{t.name} {t.version} < {wanted[t.name]}" for t in found
                 if t.version is None or hosts.version_tuple(t.version) < hosts.version_tuple(wanted[t.name])]
        expect(f"tools missing or too old on {hosts.host_name(host)}{_failing(wrong)}", len(wrong), "==", 0)


@pytest.mark.hosts
@pytest.mark.evening
@check(id="hosts.disk", title="The on-call host has room: disk and inode use below their thresholds",
       section="alert-disk-space-low-10", severity="medium", remediation="hosts.free-disk",
       depends=("hosts",))
def test_disk(env, oncall):
    t = env.thresholds
    for host in oncall:
        for path in env.config.hosts.disk_paths:
            disk = hosts.disk(host, path)
            evidence(f"{path} on {hosts.host_name(host)}", disk)
            expect(f"disk use of {path} on {hosts.host_name(host)}", disk.used_ratio, "<=", t.host_disk_max_ratio, unit="%")
            if disk.inodes_used_ratio is not None:
                expect(f"inode use of {path} on {hosts.host_name(host)}", disk.inodes_used_ratio, "<=", t.host_inodes_max_ratio,
                       unit="%")


def _self_managed(configured: tuple, *kinds: str) -> None:
    if not configured:
        sections = " or ".join(f"[[hosts.{kind}]]" for kind in kinds)
        pytest.skip(f"no {sections}: the {' and '.join(kinds)} hosts are managed by AWS, not by the team")


@pytest.mark.hosts
@pytest.mark.weekly
@check(id="hosts.services", title="Self-managed PostgreSQL and Redis hosts run their service and listen on its port",
       section=ENDPOINTS, severity="critical", remediation="hosts.start-service",
       depends=("hosts", "primary", "redis"))
def test_services(env):
    configured = [*env.config.hosts.postgres, *env.config.hosts.redis]
    _self_managed(tuple(configured), "postgres", "redis")
    for entry in configured:
        host = env.clients.host(entry.url)
        service = hosts.service(host, entry.process, hosts.service_port(env.clients, entry))
        evidence(f"{entry.process} on {hosts.host_name(host)}", service)
        expect(f"{entry.process} processes on {hosts.host_name(host)}", len(service.pids), ">=", 1)
        expect(f"sockets listening on port {service.port} on {hosts.host_name(host)}", len(service.listening_on), ">=", 1)


@pytest.mark.hosts
@pytest.mark.weekly
@check(id="hosts.postgres-config", title="Self-managed PostgreSQL: ssl on, and trust only for local connections",
       section=ENDPOINTS, severity="high", remediation="hosts.secure-postgres",
       depends=("hosts",))
def test_postgres_config(env):
    _self_managed(env.config.hosts.postgres, "postgres")
    for entry in env.config.hosts.postgres:
        host = env.clients.host(entry.url)
        config_file = env.clients.endpoint(entry.config_file, what="hosts.postgres.config_file")
        settings = hosts.postgres_settings(host, config_file, entry.auto_file)
        trusted = [f"{line.file}:{line.number} {line.text}" for line in hosts.hba_lines(host, env.clients.endpoint(
            entry.hba_file, what="hosts.postgres.hba_file")) if line.method == "trust" and line.kind != "local"]
        evidence(f"PostgreSQL configuration on {hosts.host_name(host)}", {"ssl": settings.get("ssl", "off"), "trust_lines": trusted})
        expect(f"ssl setting ({config_file} on {hosts.host_name(host)})", settings.get("ssl", "off").lower(), "in",
               ("on", "true", "yes", "1"))
        expect(f"pg_hba lines trusting network connections{_failing(trusted)}", len(trusted), "==", 0)


@pytest.mark.hosts
@pytest.mark.weekly
@check(id="hosts.redis-config", title="Self-managed Redis: requirepass set and protected-mode yes",
       section="redis-connection-issues", severity="high", remediation="hosts.secure-redis",
       depends=("hosts",))
def test_redis_config(env):
    _self_managed(env.config.hosts.redis, "redis")
    for entry in env.config.hosts.redis:
        host = env.clients.host(entry.url)
        config_file = env.clients.endpoint(entry.config_file, what="hosts.redis.config_file")
        settings = hosts.redis_settings(host, config_file)
        # The password itself is never read out: only whether one is set.
        evidence(f"Redis configuration on {hosts.host_name(host)}", {"requirepass": "set" if settings.get("requirepass") else "not set",
                                                                     "protected-mode": settings.get("protected-mode", "yes")})
        expect(f"requirepass ({config_file} on {hosts.host_name(host)})", "set" if settings.get("requirepass") else "not set",
               "==", "set")
        # Redis's default is yes: only an explicit "no" turns it off.
        expect(f"protected-mode ({config_file} on {hosts.host_name(host)})", settings.get("protected-mode", "yes").lower(), "==", "yes")
