"""A host as testinfra sees it (``local://``, ``ssh://``, ``docker://``...): what it reaches, its clock, its tools,
its disks, and the service and configuration of a self-managed PostgreSQL or Redis host.

Every command here only reads (tests/test_hosts.py holds them to it over SSH). Each is bounded on the host itself
(``timeout``), and an SSH session that stops answering is dropped by its keep-alives (clients.host)."""

from __future__ import annotations

import email.utils
import math
import posixpath
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from psycopg.conninfo import conninfo_to_dict
from testinfra.host import Host

from entmoot_ops.breaker import breaker
from entmoot_ops.check import touching
from entmoot_ops.clients import Clients
from entmoot_ops.config import PostgresHost, RedisHost
from entmoot_ops.errors import DependencyError
from entmoot_ops.probes import measuring
from entmoot_ops.redaction import excerpt

COMMAND_SECONDS = 10  # the longest any one command may run on the host
VERSION = re.compile(r"(\d+(?:\.\d+)+)")


def host_name(host: Host) -> str:
    return host.backend.get_pytest_id()


def _run(host: Host, command: str, *args: Any) -> Any:
    """``command`` (``%s`` filled with quoted ``args``), bounded by ``timeout`` on the host. SSH's own failure
    (exit 255: refused, unknown host key, authentication) is the host's being unreachable, in one line."""
    name = host_name(host)
    touching("hosts")
    breaker.guard(name, f"host {name}")  # a host that gave no answer once in this run costs no second timeout
    started = time.monotonic()
    with measuring(f"host {name}"):
        try:
            result = host.run(f"timeout {COMMAND_SECONDS} sh -c %s", host.backend.get_command(command, *args))
        except RuntimeError as exc:  # testinfra's SSH backend raises ssh's own failure (exit 255) with its result
            result = exc.args[0] if exc.args and hasattr(exc.args[0], "rc") else None
            if result is None:
                raise
    if result.rc == 255 and host.backend.NAME in ("ssh", "paramiko"):
        detail = next((line for line in result.stderr.splitlines() if line.strip()), "ssh exited 255").strip()
        if "timed out" in detail.lower() or "timeout" in detail.lower():
            breaker.trip(name, f"host {name}", time.monotonic() - started, detail)
        raise DependencyError(f"host {name}", detail,
                              fix="check [hosts] (the testinfra URL), hosts.ssh_config and hosts.ssh_identity_file, "
                                  "and that the host accepts this key")
    if result.rc == 124:
        raise DependencyError(f"host {name}", f"{command.split()[0]} took over {COMMAND_SECONDS} s")
    breaker.close(name)
    return result


# ------------------------------------------------------------------------------------------------ reach
@dataclass(frozen=True)
class Target:
    name: str  # what the runbook's steps reach there: "API", "PostgreSQL primary", "AWS ecs"
    host: str
    port: int


@dataclass(frozen=True)
class Reach:
    target: Target
    resolved: bool
    resolve_ms: float
    connected: bool
    connect_ms: float | None  # None when the name did not resolve

    def describe(self) -> str:
        where = f"{self.target.name} {self.target.host}:{self.target.port}"
        if not self.resolved:
            return f"{where}: does not resolve ({self.resolve_ms:.0f} ms)"
        state = f"connects in {self.connect_ms:.0f} ms" if self.connected else f"no TCP connection ({self.connect_ms:.0f} ms)"
        return f"{where}: resolves in {self.resolve_ms:.0f} ms, {state}"


# The AWS APIs the runbook's steps and the suite call, by endpoint prefix.
AWS_SERVICES = ("ecs", "monitoring", "logs", "rds", "elasticache", "elasticloadbalancing", "cloudtrail")


def _url_target(name: str, url: str) -> Target | None:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80, "redis": 6379, "rediss": 6379}.get(parts.scheme)
    return Target(name, parts.hostname, parts.port or default) if parts.hostname and (parts.port or default) else None


def _dsn_target(name: str, dsn: str) -> Target | None:
    found = conninfo_to_dict(dsn)
    host = str(found.get("host") or "")
    return Target(name, host, int(found.get("port") or 5432)) if host and not host.startswith("/") else None


def reach_targets(clients: Clients) -> list[Target]:
    """Where the runbook's steps connect, from the environment: the API, PostgreSQL (primary and replicas), Redis,
    and AWS (its configured endpoint, else each service's regional one). Unix sockets are not on the network."""
    env = clients.env
    found = [_url_target("API", clients.api_url),
             _dsn_target("PostgreSQL primary", clients.secret(env.postgres.primary_dsn, what="postgres.primary_dsn")),
             *(_dsn_target(f"PostgreSQL {r.name}", clients.secret(r.dsn, what=f"postgres.replicas.{r.name}.dsn"))
               for r in env.postgres.replicas if r.dsn),
             _url_target("Redis", clients.endpoint(env.redis.url, what="redis.url"))]
    if env.aws.endpoint_url:
        found.append(_url_target("AWS", clients.endpoint(env.aws.endpoint_url, what="aws.endpoint_url")))
    else:
        found += [Target(f"AWS {service}", f"{service}.{env.aws.region}.amazonaws.com", 443) for service in AWS_SERVICES]
    return [target for target in found if target is not None]


# One command for every target (one SSH round trip); times come from the host's own clock around each step, so
# that SSH's round trip is not in them. bash 5's EPOCHREALTIME reads that clock without forking date, three forks a
# target; an older bash forks date. Times are in microseconds.
_REACH = ('now() { if [ -n "${EPOCHREALTIME:-}" ]; then n=${EPOCHREALTIME/[.,]/}; else n=$(( $(date +%s%N) / 1000 )); fi; }; '
          't="$1"; shift; while [ $# -ge 2 ]; do now; a=$n; getent ahosts "$1" >/dev/null 2>&1; r=$?; '
          'now; b=$n; c=9; if [ $r -eq 0 ]; then timeout "$t" bash -c \': </dev/tcp/$1/$2\' _ "$1" "$2" >/dev/null 2>&1; '
          'c=$?; fi; now; d=$n; echo "$r $c $(( b-a )) $(( d-b ))"; shift 2; done')


def reach(host: Host, targets: list[Target], *, connect_seconds: float) -> list[Reach]:
    """DNS (``getent ahosts``, as the tools resolve) and a TCP connect from the host to each target, with times."""
    arguments = [value for target in targets for value in (target.host, str(target.port))]
    lines = _run(host, "bash -c %s _ " + " ".join(["%s"] * (1 + len(arguments))), _REACH, f"{connect_seconds:g}",
                 *arguments).stdout.splitlines()
    if len(lines) != len(targets):
        raise DependencyError(f"host {host_name(host)}", f"the reach script printed {len(lines)} lines for {len(targets)} targets",
                              reachable=True, fix="the host needs bash, getent, timeout and date (coreutils)")
    found = []
    for target, line in zip(targets, lines, strict=True):
        resolved, connected, resolve_us, connect_us = (int(v) for v in line.split()[:4])
        found.append(Reach(target=target, resolved=resolved == 0, resolve_ms=resolve_us / 1000,
                           connected=resolved == 0 and connected == 0, connect_ms=connect_us / 1000 if resolved == 0 else None))
    return found


# ------------------------------------------------------------------------------------------------ clocks
@dataclass(frozen=True)
class Offset:
    """Another clock minus ours, known to lie between ``low`` and ``high`` seconds."""
    low: float
    high: float

    @property
    def middle(self) -> float:
        return (self.low + self.high) / 2

    @property
    def uncertainty(self) -> float:
        return (self.high - self.low) / 2

    def minus(self, other: Offset) -> Offset:
        return Offset(self.low - other.high, self.high - other.low)

    def reading(self, limit: float) -> tuple[float, str]:
        """What decides the verdict against ``limit``, and how to say it: the largest the skew can be when even that
        is within, the smallest when even that is beyond, else the middle with its uncertainty (undecided)."""
        largest = max(abs(self.low), abs(self.high))
        smallest = 0.0 if self.low <= 0 <= self.high else min(abs(self.low), abs(self.high))
        if largest <= limit:
            return largest, "at most"
        if smallest > limit:
            return smallest, "at least"
        return abs(self.middle), f"about (±{self.uncertainty:.2f} s)"

    def decided(self, limit: float) -> bool:
        return not self.reading(limit)[1].startswith("about")

    def settled(self, limit: float) -> bool:
        """Decided against ``limit`` and against half of it: one Date header bounds a right clock only within its
        second, so it would read anywhere up to the limit (0.9 s against 1 s) and a slower round trip would tip it
        over; held to half the limit, a right clock reads well within it."""
        return self.decided(limit) and self.decided(limit / 2)


def clock_source(clients: Clients) -> tuple[str, str]:
    """Whose Date header the hosts' clocks are held to, and its URL: the API's root, or the AWS endpoint. Any answer
    carries Date: the root's (a 404, say) costs the API no dependency check, so its round trip stays short even when
    /health waits on a slow dependency, and one sample stays within a second and a little."""
    env = clients.env
    if env.hosts.clock_source == "aws":
        return "AWS endpoint", (clients.endpoint(env.aws.endpoint_url, what="aws.endpoint_url") if env.aws.endpoint_url
                                else f"https://sts.{env.aws.region}.amazonaws.com/")
    return "API", clients.api_url + "/"


def host_clock(host: Host) -> Offset:
    """The host's clock against ours: its ``date`` lies between our times before and after asking."""
    asked = time.time()
    said = float(_run(host, "date +%s.%N").stdout)
    answered = time.time()
    return Offset(said - answered, said - asked)


def http_date_clock(session: requests.Session, url: str, *, timeout: tuple[float, float], samples: int = 1,
                    until: Callable[[Offset], bool] | None = None) -> Offset:
    """A server's clock against ours, from the ``Date`` header of its answers (whole seconds: one answer bounds it
    within a second and the round trip). Each further sample is sent when, by the estimate so far, the server's
    second turns: whichever second it answers halves the interval, as htpdate does. At most ``samples``, fewer once
    the estimate satisfies ``until`` (each further one waits for a turn, up to a second)."""
    low, high = float("-inf"), float("inf")
    for sample in range(samples):
        if sample and until is not None and until(Offset(low, high)):
            break
        if sample:
            estimate = (low + high) / 2
            turn = math.floor(time.time() + estimate) + 1 - estimate  # our time at the server's next second
            time.sleep(max(0.0, turn - time.time()))
        sent = time.time()
        with measuring(f"clock source {url}"):
            response = session.head(url, timeout=timeout, allow_redirects=False)
        received = time.time()
        header = response.headers.get("Date")
        parsed = email.utils.parsedate_to_datetime(header) if header else None
        if parsed is None:
            raise DependencyError(f"clock source {url}", f"answered HTTP {response.status_code} without a Date header", reachable=True,
                                  fix="set hosts.clock_source to an endpoint that sends Date (the API or AWS)")
        second = parsed.timestamp()
        low, high = max(low, second - received), min(high, second + 1 - sent)
    return Offset(low, high)


# ------------------------------------------------------------------------------------------------ tools
@dataclass(frozen=True)
class Tool:
    name: str
    path: str | None
    version: str | None  # the first dotted number of `NAME --version`; None when it prints none
    said: str  # the first line it printed


# One command for every tool: where the PATH finds it, and the first line of its --version.
_TOOLS = ('for t in "$@"; do p=$(command -v "$t") || { echo "$t|"; continue; }; '
          'v=$("$t" --version 2>&1 | head -n 1); echo "$t|$p|$v"; done')


def tools(host: Host, names: list[str]) -> list[Tool]:
    lines = _run(host, "sh -c %s _ " + " ".join(["%s"] * len(names)), _TOOLS, *names).stdout.splitlines()
    said = {line.split("|", 1)[0]: line.split("|")[1:] for line in lines if "|" in line}
    found = []
    for name in names:
        path, *version_line = said.get(name, [""])
        first = "|".join(version_line).strip()
        match = VERSION.search(first)
        found.append(Tool(name=name, path=path or None, version=match.group(1) if match else None,
                          said=excerpt(first, 120) if path else "not on the PATH"))
    return found


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


# ------------------------------------------------------------------------------------------------ disks
@dataclass(frozen=True)
class Disk:
    path: str
    used_ratio: float  # as df computes Use%: used / (used + available to users)
    inodes_used_ratio: float | None  # None where the filesystem has no fixed inode table (btrfs, some overlays)


def disk(host: Host, path: str) -> Disk:
    out = _run(host, "stat -f -c %s %s", "%b %f %a %c %d", path)
    if out.rc != 0:
        raise DependencyError(f"host {host_name(host)}", f"stat -f {path}: {out.stderr.strip() or 'failed'}", reachable=True,
                              fix="set hosts.disk_paths to paths that exist on that host")
    blocks, free, available, inodes, inodes_free = (int(v) for v in out.stdout.split())
    used = blocks - free
    return Disk(path=path, used_ratio=used / (used + available) if used + available else 0.0,
                inodes_used_ratio=(inodes - inodes_free) / inodes if inodes else None)


# ------------------------------------------------------------------------------------------------ services
@dataclass(frozen=True)
class Service:
    process: str
    pids: tuple[int, ...]
    port: int
    listening_on: tuple[str, ...]  # the local addresses listening on the port (ss), e.g. 127.0.0.1:5432


def service_port(clients: Clients, entry: PostgresHost | RedisHost) -> int:
    """The port a self-managed server must listen on: its own setting, else the one the suite connects to."""
    if entry.port:
        return entry.port
    if isinstance(entry, PostgresHost):
        return int(conninfo_to_dict(clients.secret(clients.env.postgres.primary_dsn, what="postgres.primary_dsn")).get("port") or 5432)
    return urlsplit(clients.endpoint(clients.env.redis.url, what="redis.url")).port or 6379


def service(host: Host, process: str, port: int) -> Service:
    """The service's processes (by command name, as ``ps -C`` finds them) and the TCP sockets listening on its port."""
    out = _run(host, "ps -C %s -o pid= ; echo --; ss -Hltn %s", process, f"( sport = :{port} )").stdout
    pids, _, sockets = out.partition("--")
    return Service(process=process, pids=tuple(int(p) for p in pids.split()), port=port,
                   listening_on=tuple(line.split()[3] for line in sockets.splitlines() if len(line.split()) > 3))


def read_file(host: Host, path: str) -> str | None:
    """A file's text, or None when it is absent; a file the login cannot read is an error, not an absence."""
    out = _run(host, "cat %s", path)
    if out.rc == 0:
        return out.stdout
    if "No such file" in out.stderr:
        return None
    raise DependencyError(f"host {host_name(host)}", f"cat {path}: {out.stderr.strip()}", reachable=True,
                          fix="let the checks' login read the service's configuration (a group with read access)")


def _required_file(host: Host, path: str, *, fix: str) -> str:
    text = read_file(host, path)
    if text is None:
        raise DependencyError(f"host {host_name(host)}", f"{path}: no such file", reachable=True, fix=fix)
    return text


def _includes(host: Host, directive: str, argument: str, base: str, settings_of: Any) -> list[Any]:
    """What an include directive brings in; ``settings_of(path, text=None)`` reads a file (itself when not given)."""
    target = posixpath.join(base, argument)
    if directive == "include_dir":
        listed = _run(host, "ls -1 %s", target)
        names = sorted(n for n in listed.stdout.split() if n.endswith(".conf")) if listed.rc == 0 else []
        return [pair for name in names for pair in settings_of(posixpath.join(target, name))]
    if directive == "include":
        return settings_of(target)
    text = read_file(host, target)  # include_if_exists: a file that is not there adds nothing
    return settings_of(target, text) if text is not None else []


# ------------------------------------------------------------------------------------------------ PostgreSQL
_PG_SETTING = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*=?\s*('(?:[^']|'')*'|[^#\s]+)")


def postgres_settings(host: Host, config_file: str, auto_file: str | None) -> dict[str, str]:
    """The settings PostgreSQL starts with, as it reads them: postgresql.conf with its includes, then
    postgresql.auto.conf (ALTER SYSTEM); a later line wins."""
    def settings_of(path: str, text: str | None = None) -> list[tuple[str, str]]:
        if text is None:
            text = _required_file(host, path, fix="set the host's config_file to where this PostgreSQL reads its configuration")
        found: list[tuple[str, str]] = []
        for line in text.splitlines():
            match = _PG_SETTING.match(line)
            if not match:
                continue
            name, value = match.group(1).lower(), match.group(2)
            value = value[1:-1].replace("''", "'") if value.startswith("'") else value
            if name in ("include", "include_if_exists", "include_dir"):
                found += _includes(host, name, value, posixpath.dirname(path), settings_of)
            else:
                found.append((name, value))
        return found

    settings = dict(settings_of(config_file))
    auto = auto_file or posixpath.join(settings.get("data_directory", posixpath.dirname(config_file)), "postgresql.auto.conf")
    if read_file(host, auto) is not None:
        settings.update(settings_of(auto))
    return settings


@dataclass(frozen=True)
class HbaLine:
    file: str
    number: int
    text: str
    kind: str  # local, host, hostssl, hostnossl, hostgssenc, hostnogssenc
    method: str


def hba_lines(host: Host, hba_file: str) -> list[HbaLine]:
    """pg_hba.conf's rules (with PostgreSQL 16's include directives), each with its connection type and method."""
    def lines_of(path: str, text: str | None = None) -> list[HbaLine]:
        if text is None:
            text = _required_file(host, path, fix="set the host's hba_file to the pg_hba.conf this PostgreSQL reads")
        found: list[HbaLine] = []
        for number, line in enumerate(text.splitlines(), 1):
            fields = shlex.split(line, comments=True)
            if not fields:
                continue
            if fields[0] in ("include", "include_if_exists", "include_dir") and len(fields) > 1:
                found += _includes(host, fields[0], fields[1], posixpath.dirname(path), lines_of)
                continue
            # local DATABASE USER METHOD; host* DATABASE USER ADDRESS [MASK] METHOD [OPTIONS]
            method_at = 3 if fields[0] == "local" else 4
            if len(fields) > method_at and re.fullmatch(r"\d+\.\d+\.\d+\.\d+", fields[method_at]):
                method_at += 1  # an address written with a separate netmask
            if len(fields) > method_at:
                found.append(HbaLine(file=path, number=number, text=line.strip(), kind=fields[0], method=fields[method_at]))
        return found

    return lines_of(hba_file)


# ------------------------------------------------------------------------------------------------ Redis
def redis_settings(host: Host, config_file: str) -> dict[str, str]:
    """redis.conf's directives (with its includes) by lower-case name; a later one wins, as Redis reads them."""
    def settings_of(path: str) -> list[tuple[str, str]]:
        text = _required_file(host, path, fix="set the host's config_file to the redis.conf this Redis starts with")
        found: list[tuple[str, str]] = []
        for line in text.splitlines():
            words = line.strip().split(None, 1)
            if not words or words[0].startswith("#"):
                continue
            name, value = words[0].lower(), (words[1].strip().strip('"') if len(words) > 1 else "")
            if name == "include":
                found += settings_of(posixpath.join(posixpath.dirname(path), value))
            else:
                found.append((name, value))
        return found

    return dict(settings_of(config_file))
