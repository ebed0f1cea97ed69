"""What changed since the last run, and which checks flap.

A check's state is its latest judged outcome (a skip judges nothing and changes nothing), the run its streak began
in and how many runs it has lasted, the last 21 states as letters (``P`` passed, ``F`` a problem) and whether it
flaps. Flapping is Nagios' flap detection: the share of state changes among the last 21 results, each change
weighted from 0.75 (the oldest) to 1.25 (the newest); a check starts flapping at the high threshold and stops
below the low one, so that a check near one threshold does not flap about flapping.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from entmoot_ops.results import Outcome

# A problem is a check that was not healthy when measured: FIXED was wrong before its remediation, SILENCED is wrong
# and known.
PROBLEMS = frozenset({Outcome.FAIL, Outcome.ERROR, Outcome.FIXED, Outcome.SILENCED})
WINDOW = 21  # Nagios' MAX_STATE_HISTORY_ENTRIES
OLDEST_WEIGHT, NEWEST_WEIGHT = 0.75, 1.25


class Change(StrEnum):
    NEW = "new"  # a problem now, healthy (or never seen) last time
    STILL = "still"  # a problem now and last time
    RESOLVED = "resolved"  # healthy now, a problem last time
    UNCHANGED = ""



@dataclass(frozen=True)
class State:
    outcome: str
    at: float  # the run that judged it, seconds since the epoch
    since: float  # when its streak (of problems, or of health) began
    streak: int  # the runs the streak has lasted
    recent: str  # the last WINDOW states, oldest first: "PPFPF"
    flapping: bool = False

    @property
    def problem(self) -> bool:
        return self.outcome in PROBLEMS


def flap_percent(recent: str) -> float:
    """Nagios' weighted percent state change over ``recent`` (at most WINDOW states, oldest first). Fewer states than
    the window count as though the first had held before them, as Nagios fills a new service's history."""
    changes = [i for i in range(1, len(recent)) if recent[i] != recent[i - 1]]
    transitions = WINDOW - 1
    offset = transitions - (len(recent) - 1)  # the missing oldest transitions, none of them a change
    step = (NEWEST_WEIGHT - OLDEST_WEIGHT) / (transitions - 1)
    weighted = sum(OLDEST_WEIGHT + (offset + i - 1) * step for i in changes)
    return 100.0 * weighted / transitions


def advance(previous: State | None, outcome: str, at: float, *, high: float, low: float) -> State | None:
    """The state after a run judged ``outcome``; a skip leaves it as it was."""
    if outcome == Outcome.SKIP:
        return previous
    problem = outcome in PROBLEMS
    recent = ((previous.recent if previous else "") + ("F" if problem else "P"))[-WINDOW:]
    percent = flap_percent(recent)
    flapping = percent >= (low if previous is not None and previous.flapping else high)
    if previous is not None and previous.problem == problem:
        return replace(previous, outcome=outcome, at=at, streak=previous.streak + 1, recent=recent, flapping=flapping)
    return State(outcome, at, at, 1, recent, flapping)


def change(previous: State | None, current: State | None) -> Change:
    """What a run says of a check, given its state before the run and after it (a flapping check is still new, still
    or resolved: ``--fail-on new`` judges by that; outputs say ``flapping`` in its place). A failure after its
    silence ended is new again."""
    if current is None or current is previous:  # not judged this time
        return Change.UNCHANGED
    if current.problem:
        # A problem whose silence has ended is news again: the grace it was given is over.
        unsilenced = previous is not None and previous.outcome == Outcome.SILENCED and current.outcome != Outcome.SILENCED
        return Change.STILL if previous is not None and previous.problem and not unsilenced else Change.NEW
    return Change.RESOLVED if previous is not None and previous.problem else Change.UNCHANGED
