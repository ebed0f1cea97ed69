"""Silences: a known problem shown as SILENCED, with its reading, reason, author and end, until that end.

Like Alertmanager's, every silence ends by itself; unlike a mutelist, none lasts for ever (``[silences]
longest_days``, default 30). They are kept per environment in ``NAME.silences.toml`` beside the environment's file,
so that a team reviews them in git like the thresholds; ``entmoot-ops silence add|list|expire`` writes that file
(under a lock: two on-calls adding at once lose neither). A silence hides a FAIL, and an ERROR only when it says so
(``errors = true``): a check that cannot measure is not the known problem it was silenced for.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import os
import re
import secrets
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import tomli_w
from pydantic import AwareDatetime, StringConstraints, model_validator

from entmoot_ops.config import SilenceSettings, Strict, validated
from entmoot_ops.errors import ConfigError
from entmoot_ops.results import Outcome

SUFFIX = ".silences.toml"
HEADER = ("# Silences of this environment, kept by the commands entmoot-ops silence add, list and expire; review them as\n"
          "# the environment's own file. Each ends by itself (ends); a FAIL is shown as SILENCED until then, an ERROR only\n"
          "# with errors = true.\n\n")
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Silence(Strict):
    id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8}$")]
    # A check id, or a glob of a group of them (redis.*): never one that starts with a wildcard, which hides everything.
    check: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9*?\[\]._-]*$")]
    resource: Annotated[str, StringConstraints(min_length=1)] | None = None  # a replica, a host (a glob too)
    starts: AwareDatetime
    ends: AwareDatetime
    reason: Text
    by: Text
    errors: bool = False

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> Silence:
        if self.ends <= self.starts:
            raise ValueError("ends must be after starts")
        return self

    def matches(self, check_id: str, resource: str, outcome: str, now: datetime) -> bool:
        return (self.starts <= now < self.ends and fnmatch.fnmatchcase(check_id, self.check)
                and (self.resource is None or fnmatch.fnmatchcase(resource, self.resource))
                and (outcome == Outcome.FAIL or (outcome == Outcome.ERROR and self.errors)))

    def said(self) -> str:
        """``silenced by alice until 2026-12-10 09:00 UTC (3f2a9c1e): disk resize booked``"""
        return f"silenced by {self.by} until {when(self.ends)} ({self.id}): {self.reason}"


class SilenceFile(Strict):
    silence: tuple[Silence, ...] = ()


@dataclass(frozen=True)
class Refusal(Exception):
    """A silence that will not be written as asked."""

    message: str
    fix: str = ""


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def path_of(environments_dir: Path, env: str) -> Path:
    return environments_dir / f"{env}{SUFFIX}"


def load(path: Path, settings: SilenceSettings) -> list[Silence]:
    """The silences in ``path`` (none when it does not exist), validated strictly: every mistake one line with its
    key, and a silence longer than the longest allowed refused as the command would have refused it."""
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    found = list(validated(path, SilenceFile, data).silence)
    for index, silence in enumerate(found):
        if silence.ends - silence.starts > timedelta(days=settings.longest_days):
            raise ConfigError(f"{path}: silence.{index}.ends: {silence.id} lasts longer than the longest allowed "
                              f"({settings.longest_days:g} days, [silences] longest_days)", fix="end it sooner")
    if len({s.id for s in found}) != len(found):
        raise ConfigError(f"{path}: two silences share an id", fix="give each its own id")
    return found


def active(silences: list[Silence], now: datetime) -> list[Silence]:
    return [s for s in silences if s.starts <= now < s.ends]


def matching(silences: list[Silence], check_id: str, resource: str, outcome: str, now: datetime) -> Silence | None:
    """The silence that hides this result, if any: of several, the one that ends last."""
    found = [s for s in silences if s.matches(check_id, resource, outcome, now)]
    return max(found, key=lambda s: s.ends) if found else None


def stale(silences: list[Silence], last_matched: dict[str, float], now: datetime, settings: SilenceSettings) -> list[Silence]:
    """Active silences that have hidden nothing for ``stale_days``: the problem is gone, or the silence names the
    wrong check; either way it should be expired."""
    cutoff = now - timedelta(days=settings.stale_days)
    return [s for s in active(silences, now)
            if s.starts <= cutoff and datetime.fromtimestamp(last_matched.get(s.id, 0), UTC) < cutoff]


_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def end_of(text: str, now: datetime) -> datetime:
    """``--until``: a duration from now (``3d``, ``12h``, ``1w2d``, ``90m``) or a date and time (ISO 8601; UTC when it
    names no offset; a date alone is its midnight, UTC)."""
    text = text.strip()
    duration = _DURATION.match(text) if text else None
    if duration and any(duration.groups()):
        weeks, days, hours, minutes = (int(part or 0) for part in duration.groups())
        return now + timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refusal(f"--until {text!r}: neither a duration (3d, 12h, 1w, 90m) nor a date (2026-12-10T09:00Z)",
                      fix="give the silence an end") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new(*, check: str, resource: str | None, until: str | None, reason: str | None, by: str, errors: bool,
        settings: SilenceSettings, now: datetime) -> Silence:
    """A silence as ``silence add`` asked for it, or a Refusal: no end, an end past the longest, no reason."""
    now = now.replace(microsecond=0)  # a file a person reads: to the second
    if not until:
        raise Refusal("a silence needs an end: --until DATE_OR_DURATION", fix=f"e.g. --until 3d; at most {settings.longest_days:g} days")
    if not reason or not reason.strip():
        raise Refusal("a silence needs a reason: --reason TEXT", fix="say why the problem is known and what will end it")
    if not check[:1].isalnum():
        raise Refusal(f"--check {check}: a silence names a check or a group of them (redis.*), never every check",
                      fix="name the check that is known to fail")
    ends = end_of(until, now)
    if ends <= now:
        raise Refusal(f"--until {until}: {when(ends)} has passed", fix="give an end in the future")
    if ends - now > timedelta(days=settings.longest_days):
        raise Refusal(f"--until {until}: {when(ends)} is more than {settings.longest_days:g} days away (the longest a "
                      "silence may last, [silences] longest_days)", fix="silence it for less, and again when it ends if need be")
    data = {"id": secrets.token_hex(4), "check": check, "resource": resource, "starts": now, "ends": ends,
            "reason": reason, "by": by, "errors": errors}
    try:
        return Silence.model_validate({key: value for key, value in data.items() if value is not None})
    except ValueError as exc:
        problem = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        raise Refusal(f"--{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}", fix="see entmoot-ops silence add --help") from None


@contextlib.contextmanager
def editing(path: Path, settings: SilenceSettings) -> Iterator[list[Silence]]:
    """The file's silences, to change in place: read and written back under a lock on its directory, so that two
    commands at once lose neither's change."""
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        silences = load(path, settings)
        yield silences
        document = {"silence": [{key: value for key, value in s.model_dump().items() if value is not None and value is not False}
                                for s in silences]}
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(HEADER + tomli_w.dumps(document))
        temporary.replace(path)
    finally:
        os.close(descriptor)
