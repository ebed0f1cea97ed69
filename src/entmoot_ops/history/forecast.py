"""Where a gauge is heading: a least-squares line through its recent readings (Prometheus' ``predict_linear``), and
when it would cross its threshold at that rate.

Only readings a check declares a gauge (``expect(..., gauge=True)``: free storage, connections, replica lag, memory,
sequence headroom) are fitted: a rate or a count per window has no direction to extrapolate.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from entmoot_ops.check import format_value

DAY = 86400.0


@dataclass(frozen=True)
class Forecast:
    label: str
    now: float
    limit: float
    unit: str
    rate_per_day: float  # the fitted slope, in the reading's unit per day
    days_left: float
    span_days: float  # from the first reading fitted to the last
    runs: int  # the readings the line was fitted through, this run's included

    def line(self, check_id: str) -> str:
        """``rds.free-storage: free storage 34% now, crosses 10% in about 6 days at the last 14 days' rate``."""
        days = f"{self.days_left:.0f} days" if self.days_left >= 1.5 else f"{self.days_left * 24:.0f} hours"
        window = f"{self.span_days:.0f} days'" if self.span_days >= 1.5 else f"{self.span_days * 24:.0f} hours'"
        return (f"{check_id}: {self.label} {format_value(self.now, self.unit)} now, crosses "
                f"{format_value(self.limit, self.unit)} in about {days} at the last {window} rate")

    def as_dict(self) -> dict:
        return {"label": self.label, "now": self.now, "limit": self.limit, "unit": self.unit,
                "rate_per_day": self.rate_per_day, "days_left": round(self.days_left, 2), "span_days": round(self.span_days, 2),
                "runs": self.runs}


def crossing(label: str, points: Sequence[tuple[float, float]], *, limit: float, op: str, unit: str, horizon_days: float,
             min_runs: int) -> Forecast | None:
    """A forecast when the gauge's points (seconds since the epoch, value; the latest is now) move toward ``limit`` fast
    enough to cross it within ``horizon_days``; None when they do not, or are too few or too short to say."""
    if len(points) < min_runs or op not in ("<", "<=", ">", ">="):
        return None
    times = [at for at, _ in points]
    if max(times) - min(times) < DAY / 4:  # readings of one hour say nothing of a week
        return None
    slope = statistics.linear_regression([t / DAY for t in times], [value for _, value in points]).slope
    now = points[-1][1]
    # "<=" holds while the value stays below its limit: it is heading there when it grows, and the other way round.
    toward = slope > 0 if op in ("<", "<=") else slope < 0
    if not toward:
        return None
    days_left = (limit - now) / slope
    if not 0 <= days_left <= horizon_days:
        return None
    return Forecast(label, now, limit, unit, slope, days_left, (max(times) - min(times)) / DAY, len(points))
