"""The on-call's memory, below a run: the store on SQLite and on a real PostgreSQL server of the test's own, what
changed since the last run, Nagios' flap detection, the forecast of a gauge, silences and their file, the commands."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from entmoot_ops.config import HistorySettings, SilenceSettings
from entmoot_ops.errors import ConfigError
from entmoot_ops.history import changes, forecast, silences
from entmoot_ops.history.store import (DAY, MIGRATIONS, SCHEMA_VERSION, HistoryUnavailable, Remembered, Run, open_store)
from custom_checks import environment_file, run_custom_checks
from postgres_server import postgres_server

ROOT = Path(__file__).resolve().parent.parent
NOW = time.time()


@pytest.fixture(scope="module")
def postgres_dsn():
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request, tmp_path):
    """History settings naming a fresh store: a SQLite file, or a database of its own on the test's PostgreSQL."""
    if request.param == "sqlite":
        return HistorySettings(path=str(tmp_path / "history.sqlite3"), timeout_seconds=2)
    import psycopg

    dsn = request.getfixturevalue("postgres_dsn")
    with psycopg.connect(dsn, autocommit=True) as connection:  # each test a clean slate on the shared server
        for table in ("entmoot_results", "entmoot_runs", "entmoot_states", "entmoot_silence_matches", "entmoot_schema"):
            connection.execute(f"DROP TABLE IF EXISTS {table}")
    os.environ["ENTMOOT_TEST_HISTORY_DSN"] = dsn
    return HistorySettings(dsn="env:ENTMOOT_TEST_HISTORY_DSN", timeout_seconds=2)


def _open(settings: HistorySettings):
    return open_store(settings, lambda reference, key: os.environ[reference[4:]])


def _result(outcome: str, value: float | None = 0.5, check: str = "rds.free-storage", resource: str = "", **extra) -> Remembered:
    return Remembered(check, resource, outcome, [{"label": "free storage", "value": value, "limit": 0.1, "unit": "%", "op": ">",
                                                  "gauge": "free storage", "measured": f"{value}", "threshold": "> 10%"}], **extra)


def _run(at: float, env: str = "prod", tag: str = "") -> Run:
    return Run(f"run-{env}-{at}-{tag}", env, at, "1.0", "morning")


def test_a_run_is_remembered_with_its_readings_and_read_back(settings):
    store = _open(settings)
    store.record(_run(NOW - 3600), [_result("pass", 0.5), _result("fail", None, check="api.health", resource="")])
    store.record(_run(NOW), [_result("fail", 0.05), _result("pass", 0.9, check="replication.lag", resource="replica1"),
                             _result("silenced", 0.04, check="redis.memory", silence_id="3f2a9c1e")])
    found = store.results("prod", "rds.free-storage", NOW - DAY)
    assert [(r.outcome, r.readings[0]["value"], r.version) for r in found] == [("pass", 0.5, "1.0"), ("fail", 0.05, "1.0")]
    assert store.results("prod", "replication.lag", NOW - DAY, "replica1")[0].resource == "replica1"
    states = store.states("prod")
    assert states[("rds.free-storage", "")].outcome == "fail" and states[("rds.free-storage", "")].streak == 1
    assert states[("api.health", "")].recent == "F"
    assert set(store.gauge_readings("prod", NOW - DAY)) == {("rds.free-storage", ""), ("replication.lag", "replica1"),
                                                           ("redis.memory", ""), ("api.health", "")}
    assert store.last_matched("prod") == {"3f2a9c1e": NOW}
    assert store.states("staging") == {}  # environments apart
    store.close()


def test_what_changed_since_the_last_run_new_still_resolved_unchanged(settings):
    store = _open(settings)
    said = []
    for at, outcome in enumerate(["pass", "fail", "fail", "skip", "error", "pass", "pass"]):
        before = store.states("prod").get(("rds.free-storage", ""))
        after = changes.advance(before, outcome, NOW + at, high=20, low=5)
        said.append((changes.change(before, after).value, after.streak if after else 0))
        store.record(_run(NOW + at), [_result(outcome)])
    assert said == [("", 1), ("new", 1), ("still", 2), ("", 2), ("still", 3), ("resolved", 1), ("", 2)]
    state = store.states("prod")[("rds.free-storage", "")]
    assert state.since == NOW + 5 and state.recent == "PFFFPP"  # the skip judged nothing
    store.close()


def test_a_check_that_fails_at_first_sight_is_new():
    assert changes.change(None, changes.advance(None, "fail", NOW, high=20, low=5)) == changes.Change.NEW


def test_flapping_is_nagios_weighted_state_change_with_hysteresis():
    assert changes.flap_percent("P" * 21) == 0
    # Every one of 20 transitions a change: 100 %; the newest weigh more than the oldest.
    assert changes.flap_percent("PF" * 10 + "P") == pytest.approx(100)
    assert changes.flap_percent("P" * 19 + "FP") > changes.flap_percent("PF" + "P" * 19)
    state, seen = None, []
    for outcome in ["pass", "fail"] * 4 + ["pass"] * 22:
        state = changes.advance(state, outcome, NOW, high=20, low=5)
        seen.append(state.flapping)
    started, stopped = seen.index(True), len(seen) - seen[::-1].index(True)
    assert 3 <= started <= 6, seen  # a few changes in a row start it
    assert stopped > 10, seen  # and it lasts until the changes age out below the low threshold
    assert not seen[-1]


def test_two_writers_at_once_lose_no_row(settings):
    """Two runs of the suite (two on-calls) writing at once, each in a process of its own."""
    _open(settings).close()  # created and migrated before the race: the race is about runs
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pool.starmap(_write_runs, [(settings, NOW, 25), (settings, NOW + 1, 25)])
    store = _open(settings)
    assert len(store.results("prod", "rds.free-storage", 0)) == 50
    state = store.states("prod")[("rds.free-storage", "")]
    assert state.at == NOW + 49 and 25 <= state.streak <= 50  # the latest run's; one that committed late did not go back
    store.close()


def _write_runs(settings: HistorySettings, first: float, runs: int) -> None:
    store = _open(settings)
    for index in range(runs):
        store.record(_run(first + 2 * index), [_result("pass")])
    store.close()


def test_a_run_that_commits_after_a_later_one_is_kept_and_leaves_the_state_at_the_later_one(settings):
    store = _open(settings)
    store.record(_run(NOW), [_result("fail")])
    store.record(_run(NOW - 60), [_result("pass")])  # began first, written last (a long run beside a short one)
    state = store.states("prod")[("rds.free-storage", "")]
    assert (state.outcome, state.at, state.streak) == ("fail", NOW, 1)
    assert [r.outcome for r in store.results("prod", "rds.free-storage", 0)] == ["pass", "fail"]
    store.close()


def test_each_environment_keeps_its_own_retention_in_a_shared_store(settings):
    store = _open(settings.model_copy(update={"retention_days": 400}))
    store.record(_run(NOW - 100 * DAY, env="prod"), [_result("fail")])
    _open(settings.model_copy(update={"retention_days": 30})).record(_run(NOW, env="sandbox"), [_result("pass")])
    assert len(store.results("prod", "rds.free-storage", 0)) == 1 and ("rds.free-storage", "") in store.states("prod")
    store.close()


def test_the_user_a_run_is_remembered_by_has_a_name_even_where_the_system_has_none(monkeypatch):
    from entmoot_ops.history import store

    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found: 1000")

    monkeypatch.setattr(store.getpass, "getuser", nameless)
    assert store.user() == f"uid {os.getuid()}" and store.Run("r", "prod", NOW, "1.0", "morning").by.startswith("uid ")


def test_retention_drops_what_is_older_than_it(settings):
    kept = settings.model_copy(update={"retention_days": 30})
    store = _open(kept)
    store.record(_run(NOW - 40 * DAY), [_result("fail", 0.2)])
    store.record(_run(NOW - 20 * DAY), [_result("pass", 0.3)])
    store.record(_run(NOW), [_result("pass", 0.4)])
    assert [r.readings[0]["value"] for r in store.results("prod", "rds.free-storage", 0)] == [0.3, 0.4]
    store.close()


def test_a_store_written_by_an_older_suite_is_migrated_and_keeps_its_runs(settings):
    """A store of schema 1 (results, no states), as the first release wrote it: opened by this suite, it gains the
    states, filled from the results it holds."""
    old = [("run-1", "prod", "rds.free-storage", "", NOW - 2, "pass"), ("run-2", "prod", "rds.free-storage", "", NOW - 1, "fail"),
           ("run-3", "prod", "rds.free-storage", "", NOW, "fail")]
    columns = ("run_id, env, check_id, resource, at, outcome, change, flapping, gauges, readings, message, remediation, "
               "remediation_state, duration_seconds, silence_id, version")
    rows = [(*row, "", False, False, "[]", "", "", "", 0.1, None, "0.9") for row in old]
    if settings.dsn:
        import psycopg

        with psycopg.connect(os.environ["ENTMOOT_TEST_HISTORY_DSN"], autocommit=True) as connection:
            for statement in MIGRATIONS[0]:
                connection.execute(statement)
            connection.execute("CREATE TABLE entmoot_schema (version INTEGER NOT NULL)")
            connection.execute("INSERT INTO entmoot_schema VALUES (1)")
            connection.cursor().executemany(f"INSERT INTO entmoot_results ({columns}) VALUES ({', '.join(['%s'] * 16)})", rows)
    else:
        with sqlite3.connect(settings.path) as connection:
            for statement in MIGRATIONS[0]:
                connection.execute(statement)
            connection.executemany(f"INSERT INTO entmoot_results ({columns}) VALUES ({', '.join('?' * 16)})", rows)
            connection.execute("PRAGMA user_version = 1")
    store = _open(settings)
    state = store.states("prod")[("rds.free-storage", "")]
    assert (state.outcome, state.streak, state.recent, state.since) == ("fail", 2, "PFF", NOW - 1)
    assert len(store.results("prod", "rds.free-storage", 0)) == 3
    store.close()
    assert SCHEMA_VERSION == 2


def test_a_store_written_by_a_newer_suite_is_one_line(settings):
    _open(settings).close()
    if settings.dsn:
        import psycopg

        with psycopg.connect(os.environ["ENTMOOT_TEST_HISTORY_DSN"], autocommit=True) as connection:
            connection.execute("UPDATE entmoot_schema SET version = 99")
    else:
        with sqlite3.connect(settings.path) as connection:
            connection.execute("PRAGMA user_version = 99")
    with pytest.raises(HistoryUnavailable, match=r"written by a newer entmoot-ops \(schema 99"):
        _open(settings)


def test_a_corrupt_store_is_one_line(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not a database, it was cut short by a full disk" * 100)
    with pytest.raises(HistoryUnavailable) as raised:
        _open(HistorySettings(path=str(path)))
    assert "\n" not in str(raised.value) and "not a database" in str(raised.value)


def test_a_locked_store_is_one_line_after_its_timeout_and_the_writer_after_it_succeeds(tmp_path):
    settings = HistorySettings(path=str(tmp_path / "history.sqlite3"), timeout_seconds=0.3)
    store = _open(settings)
    holder = sqlite3.connect(settings.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another run's write, taking its time
    with pytest.raises(HistoryUnavailable, match="locked"):
        store.record(_run(NOW), [_result("pass")])
    holder.execute("ROLLBACK")
    store.record(_run(NOW), [_result("pass")])
    assert len(store.results("prod", "rds.free-storage", 0)) == 1


def test_a_full_store_is_one_line_and_loses_nothing_it_held(tmp_path):
    settings = HistorySettings(path=str(tmp_path / "history.sqlite3"))
    store = _open(settings)
    store.record(_run(NOW - 1), [_result("pass")])
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    store.connection.execute(f"PRAGMA max_page_count = {pages}")  # as a full disk: no page more
    with pytest.raises(HistoryUnavailable, match="full"):
        store.record(_run(NOW), [_result("fail", check=f"check.{n}") for n in range(400)])
    assert len(store.results("prod", "rds.free-storage", 0)) == 1


def test_an_unreachable_postgresql_store_is_one_line_without_its_password():
    os.environ["ENTMOOT_TEST_HISTORY_DSN"] = "host=127.0.0.1 port=1 dbname=x user=u password=s3cret-history-pw connect_timeout=1"
    with pytest.raises(HistoryUnavailable) as raised:
        _open(HistorySettings(dsn="env:ENTMOOT_TEST_HISTORY_DSN", timeout_seconds=1))
    assert "PostgreSQL" in str(raised.value) and "s3cret-history-pw" not in str(raised.value) and "\n" not in str(raised.value)


# --- forecast ------------------------------------------------------------------------------------------------------

def _falling(start: float, per_day: float, days: int, runs_a_day: int = 4) -> list[tuple[float, float]]:
    return [(NOW - (days - i / runs_a_day) * DAY, start - per_day * i / runs_a_day) for i in range(days * runs_a_day)]


def test_a_gauge_heading_for_its_threshold_is_forecast_with_its_time_left():
    points = [*_falling(0.9, 0.04, 14), (NOW, 0.34)]
    found = forecast.crossing("free storage", points, limit=0.10, op=">", unit="%", horizon_days=7, min_runs=4)
    assert found is not None and 5 <= found.days_left <= 7
    assert found.line("rds.free-storage") == (f"rds.free-storage: free storage 34.00% now, crosses 10.00% in about "
                                              f"{found.days_left:.0f} days at the last 14 days' rate")


def test_a_gauge_far_from_its_threshold_moving_away_or_with_too_few_readings_is_not_forecast():
    common = {"limit": 0.10, "op": ">", "unit": "%", "horizon_days": 7, "min_runs": 4}
    assert forecast.crossing("free", [*_falling(0.9, 0.001, 14), (NOW, 0.88)], **common) is None  # years away
    assert forecast.crossing("free", [*_falling(0.3, -0.04, 14), (NOW, 0.9)], **common) is None  # growing: moving away
    assert forecast.crossing("free", [(NOW - DAY, 0.5), (NOW, 0.2)], **common) is None  # two readings say nothing of a rate
    lag = [(NOW - (10 - i) * DAY, 5.0 * i) for i in range(10)] + [(NOW, 52.0)]  # replica lag growing toward 60 s
    assert forecast.crossing("replica lag", lag, limit=60, op="<", unit="s", horizon_days=7, min_runs=4) is not None


# --- silences ------------------------------------------------------------------------------------------------------

SILENCE_SETTINGS = SilenceSettings()
MOMENT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _silence(**changed) -> silences.Silence:
    return silences.new(**{"check": "redis.*", "resource": None, "until": "2d", "reason": "resize booked (CHG-1234)", "by": "alice",
                           "errors": False, "settings": SILENCE_SETTINGS, "now": MOMENT, **changed})


@pytest.mark.parametrize(("until", "reason", "refused"), [
    (None, "known", "a silence needs an end"),
    ("", "known", "a silence needs an end"),
    ("31d", "known", "more than 30 days away"),
    ("2027-03-01", "known", "more than 30 days away"),
    ("2026-12-01T00:00Z", "known", "has passed"),
    ("soon", "known", "neither a duration"),
    ("2d", None, "a silence needs a reason"),
    ("2d", "   ", "a silence needs a reason"),
])
def test_a_silence_without_an_end_beyond_the_longest_or_without_a_reason_is_refused(until, reason, refused):
    with pytest.raises(silences.Refusal, match=refused):
        _silence(until=until, reason=reason)


def test_a_silence_names_a_check_or_a_group_never_every_check_and_takes_an_offset():
    for everything in ("*", "*.memory", "?edis.memory"):
        with pytest.raises(silences.Refusal, match="never every check"):
            _silence(check=everything)
    assert _silence(until="2026-12-09T10:00+01:00").ends == datetime(2026, 12, 9, 9, 0, tzinfo=UTC)


def test_a_silence_hides_a_failure_of_what_it_names_until_its_end_and_an_error_only_when_it_says_so():
    found = _silence(until="2026-12-09T09:00Z")
    assert found.ends == datetime(2026, 12, 9, 9, 0, tzinfo=UTC)
    assert silences.matching([found], "redis.memory", "", "fail", MOMENT) == found
    assert silences.matching([found], "redis.memory", "", "error", MOMENT) is None
    assert silences.matching([_silence(errors=True)], "redis.memory", "", "error", MOMENT) is not None
    assert silences.matching([found], "rds.free-storage", "", "fail", MOMENT) is None
    assert silences.matching([found], "redis.memory", "", "fail", found.ends) is None  # ended: gone
    on_replica = _silence(check="replication.lag", resource="replica1")
    assert silences.matching([on_replica], "replication.lag", "replica2", "fail", MOMENT) is None
    assert silences.matching([on_replica], "replication.lag", "replica1", "fail", MOMENT) == on_replica


def test_a_silence_that_hid_nothing_for_a_week_is_stale():
    found = _silence(until="20d")
    later = MOMENT + timedelta(days=8)
    assert silences.stale([found], {}, later, SILENCE_SETTINGS) == [found]
    assert silences.stale([found], {found.id: (later - timedelta(days=1)).timestamp()}, later, SILENCE_SETTINGS) == []
    assert silences.stale([found], {}, MOMENT + timedelta(days=3), SILENCE_SETTINGS) == []  # too young to tell


def test_the_silences_file_is_written_under_a_lock_read_back_and_validated_strictly(tmp_path):
    path = tmp_path / "prod.silences.toml"
    with silences.editing(path, SILENCE_SETTINGS) as kept:
        kept.append(_silence())
    text = path.read_text()
    assert text.startswith("# Silences of this environment, kept by") and 'reason = "resize booked (CHG-1234)"' in text
    assert silences.load(path, SILENCE_SETTINGS)[0].by == "alice"
    # Edited by hand past the longest, or with a key the suite does not know: refused as a whole, one line a mistake.
    path.write_text(text.replace("ends = 2026-12-09", "ends = 2027-06-09"))
    with pytest.raises(ConfigError, match="lasts longer than the longest allowed"):
        silences.load(path, SILENCE_SETTINGS)
    path.write_text(text.replace("by = ", "muted = true\nby = "))
    with pytest.raises(ConfigError, match=r"silence\.0\.muted: Extra inputs are not permitted"):
        silences.load(path, SILENCE_SETTINGS)


# --- the commands --------------------------------------------------------------------------------------------------

def _ops(*args: str, home: Path, environments: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HOME": str(home), "XDG_STATE_HOME": str(home / "state")}
    return subprocess.run([sys.executable, "-m", "entmoot_ops.cli", *args, "--environments-dir", str(environments)],
                          capture_output=True, text=True, cwd=ROOT, env=environment, timeout=60)


def test_silence_commands_refuse_in_one_line_with_exit_4_add_list_and_expire(environments, tmp_path):
    directory = environments()
    for refused, said in ((["--reason", "known"], "a silence needs an end"), (["--until", "45d", "--reason", "x"], "more than 30 days"),
                          (["--until", "2d"], "a silence needs a reason")):
        done = _ops("silence", "add", "--env", "sandbox", "--check", "rds.free-storage", *refused, home=tmp_path, environments=directory)
        assert done.returncode == 4 and said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    typo = _ops("silence", "add", "--env", "sandbox", "--check", "rds.free-storge", "--until", "2d", "--reason", "x",
                home=tmp_path, environments=directory)
    assert typo.returncode == 4 and "no check of checks matches it" in typo.stderr, typo.stderr
    assert not (directory / "sandbox.silences.toml").exists()
    added = _ops("silence", "add", "--env", "sandbox", "--check", "rds.*", "--until", "3h", "--reason", "resize booked", "--by", "bob",
                 home=tmp_path, environments=directory)
    assert added.returncode == 0, added.stderr
    identifier = added.stdout.split()[1]
    listed = _ops("silence", "list", "--env", "sandbox", "--json", home=tmp_path, environments=directory)
    assert [(s["id"], s["check"], s["by"], s["state"]) for s in json.loads(listed.stdout)] == [(identifier, "rds.*", "bob", "ending")]
    assert _ops("silence", "expire", "nosuchid", "--env", "sandbox", home=tmp_path, environments=directory).returncode == 4
    assert _ops("silence", "expire", identifier, "--env", "sandbox", home=tmp_path, environments=directory).returncode == 0
    assert "no active silence for sandbox" in _ops("silence", "list", "--env", "sandbox", home=tmp_path, environments=directory).stdout
    assert "expired" in _ops("silence", "list", "--env", "sandbox", "--all", home=tmp_path, environments=directory).stdout


# --- the exit code of a run: --fail-on ------------------------------------------------------------------------------

MEETING = '''
    @pytest.mark.morning
    @check(id="api.meeting", **COMMON)
    def test_meeting(env):
        expect("answers", 0, ">", 0)

    @pytest.mark.morning
    @check(id="api.agenda", **COMMON)
    def test_agenda(env):
        expect("free seats", 0.4, ">", 0.1, unit="%", gauge="free seats")
'''


def test_fail_on_new_fails_only_a_new_problem_and_never_one_whose_history_is_unknown(tmp_path, own_state_directory):
    environment_file(tmp_path / "environments", "meet")
    first = run_custom_checks(tmp_path, MEETING, "--env", "meet", "--fail-on", "new")
    assert first.returncode == 1 and re.search(r"^FAIL\s+api.meeting\s+meet\s+\[new\]", first.stdout, re.M), first.stdout[-2000:]
    known = run_custom_checks(tmp_path, MEETING, "--env", "meet", "--fail-on", "new")
    assert known.returncode == 0 and "[still, since" in known.stdout, known.stdout[-2000:]
    assert run_custom_checks(tmp_path, MEETING, "--env", "meet").returncode == 1  # the default: any failure
    store = own_state_directory / "entmoot-ops" / "history.sqlite3"
    store.unlink()
    store.write_bytes(b"damaged" * 1000)
    unknown = run_custom_checks(tmp_path, MEETING, "--env", "meet", "--fail-on", "new")
    assert unknown.returncode == 1, unknown.stdout[-2000:]
    assert [line for line in unknown.stdout.splitlines() if line.startswith("history [meet]")] == [
        next(line for line in unknown.stdout.splitlines() if "not read" in line)], unknown.stdout[-2000:]


def test_fail_on_warn_fails_a_gauge_about_to_cross_its_threshold(tmp_path, own_state_directory):
    environment_file(tmp_path / "environments", "meet")
    store = open_store(HistorySettings(path=str(own_state_directory / "entmoot-ops" / "history.sqlite3")), lambda r, k: "")
    for index, (at, free) in enumerate(_falling(0.9, 0.08, 7)):
        store.record(_run(at, env="meet", tag=str(index)), [Remembered("api.agenda", "", "pass", [
            {"label": "free seats", "value": free, "limit": 0.1, "unit": "%", "op": ">", "gauge": "free seats"}])])
    store.close()
    body = MEETING.replace('expect("answers", 0, ">", 0)', 'expect("answers", 1, ">", 0)')
    warned = run_custom_checks(tmp_path, body, "--env", "meet")
    flat = re.sub(r"\n +", " ", warned.stdout)  # the summary's rows, unwrapped
    assert warned.returncode == 0 and re.search(r"^WARN\s+api.agenda\s+meet\s+free seats 40\.00% now, crosses 10\.00% in about \d+ "
                                                r"(hours|days) at the last 7 days' rate", flat, re.M), warned.stdout[-2000:]
    assert run_custom_checks(tmp_path, body, "--env", "meet", "--fail-on", "warn").returncode == 1


def test_a_run_says_which_silences_end_within_a_day_and_which_hid_nothing_for_a_week(tmp_path):
    environment_file(tmp_path / "environments", "meet")
    now = datetime.now(UTC)
    path = silences.path_of(tmp_path / "environments", "meet")
    with silences.editing(path, SILENCE_SETTINGS) as kept:  # set ten days ago, as an on-call would have
        kept.append(silences.new(check="api.meeting", resource=None, until="12d", reason="booked", by="bob", errors=False,
                                 settings=SILENCE_SETTINGS, now=now - timedelta(days=10)))
        kept.append(silences.new(check="api.agenda", resource=None, until="10d5h", reason="old news", by="bob", errors=False,
                                 settings=SILENCE_SETTINGS, now=now - timedelta(days=10)))
    done = run_custom_checks(tmp_path, MEETING, "--env", "meet")
    assert done.returncode == 0 and re.search(r"^SILENCED api.meeting", done.stdout, re.M), done.stdout[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("silence ")]
    meeting, agenda = kept[0].id, kept[1].id
    assert any(line.startswith(f"silence {agenda} of api.agenda [meet] ends in 5 h") for line in lines), lines
    assert any(line.startswith(f"silence {agenda} of api.agenda [meet] is stale") and f"silence expire {agenda} --env meet" in line
               for line in lines), lines
    assert not any(meeting in line for line in lines), lines  # it hid api.meeting in this very run: not stale
