"""CloudWatch's latest period is partial (on AWS its datapoints arrive one to three minutes late): what is judged."""

from __future__ import annotations

from datetime import datetime, timedelta, UTC

from entmoot_ops.probes.cloudwatch import Series, Window

NOW = datetime(2026, 12, 4, 7, 1, 25, tzinfo=UTC)


def _series(*seconds_ago: int) -> Series:
    return Series("AWS/ECS", "CPUUtilization", "Average",
                  tuple((NOW - timedelta(seconds=s), float(s)) for s in sorted(seconds_ago, reverse=True)))


def test_the_latest_complete_period_with_data_is_judged_and_named():
    reading = _series(45, 35, 5).latest_period(10, now=NOW)  # the period 5 s ago is still running
    assert reading.value == 35 and reading.complete
    assert reading.describe() == "07:00:50–07:01:00Z"


def test_an_empty_latest_period_is_not_a_missing_reading():
    reading = _series(65, 55).latest_period(10, now=NOW)  # nothing yet in the last 50 s: AWS's delay
    assert reading.value == 55 and reading.complete


def test_where_only_the_current_period_holds_data_it_is_judged_and_said_partial():
    reading = _series(5).latest_period(10, now=NOW)  # a service younger than one period
    assert reading.value == 5 and not reading.complete
    assert reading.describe() == "07:01:20–07:01:30Z, partial"
    assert _series().latest_period(10, now=NOW) is None


def test_a_window_holds_only_periods_that_have_ended_on_their_boundaries():
    before = datetime.now(UTC)
    window = Window.last(15, 10)
    assert window.end <= before + timedelta(seconds=1) and window.end.timestamp() % 10 == 0
    assert window.start.timestamp() % 10 == 0 and window.end - window.start == timedelta(minutes=15)
    assert window.complete and "partial" not in window.describe()


def test_a_window_since_a_moment_begins_with_the_first_period_after_it():
    moment = datetime.now(UTC) - timedelta(minutes=2, seconds=3)
    window = Window.since(moment, 60)
    assert moment <= window.start < moment + timedelta(minutes=1) and window.start.timestamp() % 60 == 0
    assert window.complete


def test_until_a_period_has_ended_since_the_moment_the_first_is_judged_and_said_partial():
    window = Window.since(datetime.now(UTC), 3600)
    assert not window.complete and window.describe().endswith("(60 min, partial)")
