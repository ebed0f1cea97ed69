"""``entmoot-ops silence add|list|expire`` and ``entmoot-ops history``: the on-call's memory from the terminal."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from entmoot_ops.cli.common import Refused, environment_of, project_checks
from entmoot_ops.errors import ConfigError


def _silences_file(arguments: argparse.Namespace) -> Path:
    from entmoot_ops.config import environments_dir
    from entmoot_ops.history import silences

    return silences.path_of(arguments.environments_dir or environments_dir(), arguments.env)


def _store(env: object):  # noqa: ANN202 - history.store.Store, imported on use
    from entmoot_ops.clients import Clients
    from entmoot_ops.history.store import open_store

    clients = Clients(env)
    try:
        return open_store(env.history, lambda reference, key: clients.secret(reference, what=key))
    finally:
        clients.close()


def silence_add(arguments: argparse.Namespace) -> int:
    from entmoot_ops.history import silences
    from entmoot_ops.history.store import user

    env = environment_of(arguments)
    if arguments.checks_dir.is_dir():
        known = [entry.id for entry in project_checks(arguments.checks_dir)]
        if not fnmatch.filter(known, arguments.check):
            raise Refused(f"--check {arguments.check}: no check of {arguments.checks_dir} matches it",
                          fix="`entmoot-ops checks` lists the check ids; a glob (redis.*) silences several")
    try:
        found = silences.new(check=arguments.check, resource=arguments.resource, until=arguments.until, reason=arguments.reason,
                             by=arguments.by or user(), errors=arguments.errors, settings=env.silences,
                             now=datetime.now(UTC))
        path = _silences_file(arguments)
        with silences.editing(path, env.silences) as kept:
            kept.append(found)
    except silences.Refusal as refusal:
        raise Refused(refusal.message, fix=refusal.fix) from None
    scope = f"{found.check}{f' on {found.resource}' if found.resource else ''} [{env.name}]"
    print(f"silence {found.id} added to {path}: {scope} {found.said()}")
    print(f"a failure of it is SILENCED until then{' (an ERROR too)' if found.errors else ''}; "
          f"`entmoot-ops silence expire {found.id} --env {env.name}` ends it sooner")
    return 0


def silence_list(arguments: argparse.Namespace) -> int:
    from entmoot_ops.history import silences
    from entmoot_ops.history.store import HistoryUnavailable

    env = environment_of(arguments)
    now = datetime.now(UTC)
    found = silences.load(_silences_file(arguments), env.silences)
    note = ""
    try:
        store = _store(env)
        try:
            last = store.last_matched(env.name)
        finally:
            store.close()
        stale = {s.id for s in silences.stale(found, last, now, env.silences)}
    except HistoryUnavailable as exc:
        last, stale, note = {}, set(), f"(staleness unknown: {exc})"

    def state(s: silences.Silence) -> str:
        if s.ends <= now:
            return "expired"
        if s.starts > now:
            return "pending"
        if s.id in stale:
            return "stale"
        return "ending" if s.ends - now <= timedelta(hours=env.silences.ending_hours) else "active"

    shown = [s for s in found if arguments.all or s.ends > now]
    if arguments.json:
        print(json.dumps([{**s.model_dump(mode="json"), "state": state(s),
                           "last_matched": datetime.fromtimestamp(last[s.id], UTC).isoformat() if s.id in last else None}
                          for s in shown], indent=2))
        return 0
    if not shown:
        print(f"no {'' if arguments.all else 'active '}silence for {env.name}")
    for s in shown:
        print(f"{s.id}  {state(s):<8} {s.check}{f' on {s.resource}' if s.resource else ''}  until {silences.when(s.ends)}  "
              f"by {s.by}{'  (errors too)' if s.errors else ''}: {s.reason}")
    if note:
        print(note)
    return 0


def silence_expire(arguments: argparse.Namespace) -> int:
    from entmoot_ops.history import silences

    env = environment_of(arguments)
    now = datetime.now(UTC)
    with silences.editing(_silences_file(arguments), env.silences) as kept:
        index = next((i for i, s in enumerate(kept) if s.id == arguments.id), None)
        if index is None:
            raise Refused(f"no silence {arguments.id} in {env.name}", fix=f"`entmoot-ops silence list --env {env.name} --all` lists them")
        found = kept[index]
        if found.ends > now:  # one not begun yet ends before it begins
            kept[index] = found.model_copy(update={"starts": min(found.starts, now - timedelta(seconds=1)), "ends": now})
    print(f"silence {found.id} of {found.check} [{env.name}] expired: a failure of it fails again")
    return 0


def history(arguments: argparse.Namespace) -> int:
    """A check's remembered runs, oldest first, with their readings."""
    env = environment_of(arguments)
    if arguments.days <= 0:
        raise ConfigError(f"--days {arguments.days:g}: must be more than 0")
    store = _store(env)
    try:
        since = datetime.now(UTC).timestamp() - arguments.days * 86400
        found = store.results(env.name, arguments.check, since, arguments.resource)
    finally:
        store.close()
    if arguments.json:
        print(json.dumps([{"at": datetime.fromtimestamp(r.at, UTC).isoformat(timespec="seconds"), "check": r.check_id,
                           "resource": r.resource, "outcome": r.outcome, "change": r.change, "flapping": r.flapping,
                           "readings": r.readings, "message": r.message, "remediation": r.remediation,
                           "remediation_state": r.remediation_state, "duration_seconds": r.duration_seconds,
                           "silence": r.silence_id, "version": r.version} for r in found], indent=2))
        return 0
    if not found:
        print(f"no run of {arguments.check} remembered for {env.name} in the last {arguments.days:g} days "
              "(`entmoot-ops checks` lists the check ids)")
        return 0
    for r in found:
        readings = "; ".join(f"{v['label']} {v.get('measured', '')} {v.get('threshold', '')}" for v in r.readings) or r.message
        said = "flapping" if r.flapping else r.change
        print(f"{datetime.fromtimestamp(r.at, UTC):%Y-%m-%d %H:%M}  {r.outcome.upper():<8} {said:<8} "
              f"{r.resource + '  ' if r.resource else ''}{readings}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    default_env = os.environ.get("ENTMOOT_ENV") or "sandbox"
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--env", default=default_env, help="the environment (default $ENTMOOT_ENV or sandbox)")
    where.add_argument("--environments-dir", type=Path, help="where NAME.toml and NAME.silences.toml live")
    silence = commands.add_parser("silence", help="silence a known problem until a date, with a reason; list or expire silences")
    silence_commands = silence.add_subparsers(dest="silence_command", required=True)
    adding = silence_commands.add_parser("add", parents=[where], help="silence a check (or a glob of checks) until a date or for a duration")
    adding.add_argument("--check", required=True, metavar="ID_OR_GLOB", help="a check id (redis.memory) or a glob (redis.*)")
    adding.add_argument("--resource", metavar="NAME", help="only this replica or host (a glob too)")
    # Not required by argparse: a silence without an end is refused as the suite refuses one (exit 4, one line).
    adding.add_argument("--until", metavar="DATE_OR_DURATION", help="its end: 3d, 12h, 1w, or 2026-12-10T09:00Z (required)")
    adding.add_argument("--reason", metavar="TEXT", help="why the problem is known and what will end it (required)")
    adding.add_argument("--by", metavar="NAME", help="who silences it (default: this user)")
    adding.add_argument("--errors", action="store_true", help="hide an ERROR too (could not measure), not only a FAIL")
    adding.add_argument("--checks-dir", type=Path, default=Path("checks"), help="the checks the id must match (when present)")
    adding.set_defaults(run=silence_add)
    listing = silence_commands.add_parser("list", parents=[where], help="the active silences: ending soon, stale")
    listing.add_argument("--all", action="store_true", help="the expired ones too")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=silence_list)
    expiring = silence_commands.add_parser("expire", parents=[where], help="end a silence now")
    expiring.add_argument("id")
    expiring.set_defaults(run=silence_expire)
    past = commands.add_parser("history", parents=[where], help="a check's remembered runs, with their readings")
    past.add_argument("--check", required=True, metavar="ID")
    past.add_argument("--resource", metavar="NAME", help="only this replica or host")
    past.add_argument("--days", type=float, default=30, help="how far back (default 30)")
    past.add_argument("--json", action="store_true")
    past.set_defaults(run=history)
