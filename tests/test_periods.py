"""CloudWatch's latest period is partial (on AWS its datapoints arrive one to three minutes late): what is judged."""

from __future__ import annotations

from datetime import datetime, timedelta, UTC

from entmoot_ops.probes.cloudwatch import Series

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


def test_a_gauge_is_judged_on_its_newest_datapoint_said_partial_where_its_period_runs():
    assert _series(45, 5).newest(10, now=NOW).describe() == "07:01:20–07:01:30Z, partial"
    assert _series(45, 15).newest(10, now=NOW).complete
