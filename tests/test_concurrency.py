"""Checks measured ahead of their turn (entmoot_ops.pytest_plugin.concurrency), proven without a clock: the checks
here meet at a threading.Barrier, which only checks measuring at the same time can pass (one measured after the
other waits out the barrier's timeout and errs). Every environment points at closed loopback ports: nothing here
reaches a dependency, and nothing leaves the machine."""

from __future__ import annotations

import threading

import pytest

from conftest import ROOT
from custom_checks import environment_file, run_custom_checks
from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment

def test_the_checks_of_an_environment_measure_at_the_same_time(tmp_path):
    environment_file(tmp_path / "environments", "one")
    done = run_custom_checks(tmp_path, '''
        MEETING = threading.Barrier(3, timeout=30)

        @pytest.mark.morning
        @check(id="api.meeting-first", **COMMON)
        def test_first(env):
            expect("checks measuring with this one", MEETING.wait() >= 0, "==", True)

        @pytest.mark.morning
        @check(id="api.meeting-second", **COMMON)
        def test_second(env):
            expect("checks measuring with this one", MEETING.wait() >= 0, "==", True)

        @pytest.mark.morning
        @check(id="api.meeting-third", **COMMON)
        def test_third(env):
            expect("checks measuring with this one", MEETING.wait() >= 0, "==", True)
    ''', "-m", "morning", "--env", "one")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout


def test_environments_measure_side_by_side_and_a_stuck_one_holds_no_other(tmp_path):
    """`stuck` measures one check at a time ([concurrency] reads = 1) and its check waits until every check of `free`
    has been measured: with threads shared between the environments, or environments measured one after the other,
    it would wait out its timeout."""
    environment_file(tmp_path / "environments", "free")
    environment_file(tmp_path / "environments", "stuck", "\n[concurrency]\nreads = 1\n")
    done = run_custom_checks(tmp_path, '''
        FREE_MEASURED = threading.Barrier(3, timeout=30)  # free's two checks and stuck's first
        MEASURED = threading.Event()

        @pytest.mark.morning
        @check(id="api.side-first", **COMMON)
        def test_first(env):
            if env.name == "stuck":
                FREE_MEASURED.wait()
                expect("free's checks measured while this one waited", True, "==", True)
            else:
                FREE_MEASURED.wait()
                expect("measured", True, "==", True)

        @pytest.mark.morning
        @check(id="api.side-second", **COMMON)
        def test_second(env):
            if env.name == "free":
                FREE_MEASURED.wait()
            expect("measured", True, "==", True)
    ''', "-m", "morning", "--env", "stuck", "--env", "free")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout


def test_an_action_waits_for_nothing_measured_after_it(tmp_path):
    """A load run or an experiment changes the environment: what comes after it in the run is measured after it."""
    environment_file(tmp_path / "environments", "one")
    done = run_custom_checks(tmp_path, '''
        ORDER = []

        @pytest.mark.morning
        @check(id="api.order-before", **COMMON)
        def test_a_before(env):
            ORDER.append("before")
            expect("measured", True, "==", True)

        @pytest.mark.morning
        @pytest.mark.chaos
        @check(id="chaos.order-action", **COMMON)
        def test_b_action(env):
            ORDER.append("action")
            expect("checks measured before the action", ORDER, "==", ["before", "action"])

        @pytest.mark.morning
        @check(id="api.order-after", **COMMON)
        def test_c_after(env):
            ORDER.append("after")
            expect("what happened before this check", ORDER, "==", ["before", "action", "after"])
    ''', "-m", "morning", "--env", "one")
    assert "api.order-after" in done.stdout and "FAIL   api.order-after" not in done.stdout, done.stdout[-3000:]
    assert "FAIL   chaos.order-action" not in done.stdout, done.stdout[-3000:]


@pytest.mark.parametrize("remediate", [False, True], ids=["check-mode", "remediate"])
def test_with_remediate_a_check_that_failed_ahead_is_measured_again_in_its_turn(tmp_path, remediate):
    """An earlier check's remediation may have fixed what a later check measured ahead: on --remediate, a failure
    measured ahead is measured again before its own remediation acts; in check mode it stands."""
    environment_file(tmp_path / "environments", "one")
    done = run_custom_checks(tmp_path, '''
        MEASURED = []

        @pytest.mark.morning
        @check(id="api.again-once-broken", **COMMON)
        def test_broken_the_first_time(env):
            MEASURED.append(threading.current_thread().name)
            expect("times measured", len(MEASURED), ">", 1)
    ''', "-m", "morning", "--env", "one", *(["--remediate"] if remediate else []))
    if remediate:
        assert "PASS   api.again-once-broken" in done.stdout, done.stdout[-3000:]
    else:
        assert "FAIL   api.again-once-broken" in done.stdout and "times measured: measured 1" in done.stdout, done.stdout[-3000:]


def test_the_checks_of_a_worker_measure_at_the_same_time(tmp_path):
    """Under xdist a worker measures ahead what xdist queued for it."""
    environment_file(tmp_path / "environments", "one")
    done = run_custom_checks(tmp_path, '''
        MEETING = threading.Barrier(2, timeout=30)

        @pytest.mark.morning
        @check(id="api.worker-first", **COMMON)
        def test_first(env):
            expect("checks measuring with this one", MEETING.wait() >= 0, "==", True)

        @pytest.mark.morning
        @check(id="api.worker-second", **COMMON)
        def test_second(env):
            expect("checks measuring with this one", MEETING.wait() >= 0, "==", True)
    ''', "-m", "morning", "--env", "one", "-n", "1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout


def test_concurrent_checks_share_at_most_the_configured_sessions(sandbox, monkeypatch):
    """[concurrency] postgres_sessions: checks measuring at once take the run's sessions in turn, never more of them."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    environment = load_environment("sandbox", ROOT / "environments")
    environment = environment.model_copy(update={"concurrency": environment.concurrency.model_copy(update={"postgres_sessions": 2})})
    clients = Clients(environment)
    inside, most, lock = [0], [0], threading.Lock()
    started = threading.Barrier(5, timeout=30)

    def measure() -> None:
        started.wait()
        with clients.postgres(environment.postgres.primary_dsn, name="primary") as session:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            session.execute("SELECT pg_sleep(0.05)")
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=measure) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    clients.close()
    assert most[0] == 2
