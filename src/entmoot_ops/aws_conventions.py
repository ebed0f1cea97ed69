"""How AWS names and counts the things both the suite and its sandbox handle: IAM action prefixes, CloudWatch period
boundaries, ACM serial numbers.

Foundation: it imports nothing of the suite, so that the sandbox (which imports nothing of the suite but the
foundation) and the suite's clients and probes agree by sharing it, not by one importing the other.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# IAM's prefix where it differs from the service's signing name.
IAM_PREFIX = {"monitoring": "cloudwatch"}


def action_name(signing_name: str, operation: str) -> str:
    """``cloudwatch:GetMetricData``: the IAM action an operation is authorised as, from its service's signing name."""
    return f"{IAM_PREFIX.get(signing_name, signing_name)}:{operation}"


def period_floor(moment: datetime, period_seconds: int) -> datetime:
    """The start of the period holding ``moment``, on the clock's boundaries of that period (a 10 s period starts at
    :00, :10, ...; a 5-minute one at :00, :05, ...), as CloudWatch aggregates a standard or high-resolution metric."""
    epoch = moment.timestamp()
    return datetime.fromtimestamp(epoch - epoch % period_seconds, UTC)


def period_ceil(moment: datetime, period_seconds: int) -> datetime:
    """The first period boundary at or after ``moment``."""
    start = period_floor(moment, period_seconds)
    return start if start >= moment else start + timedelta(seconds=period_seconds)


def serial_text(serial: int) -> str:
    """A serial number as ACM writes it: lower-case hex pairs joined by colons."""
    digits = f"{serial:x}"
    digits = "0" * (len(digits) % 2) + digits
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))
