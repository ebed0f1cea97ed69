"""Checks measured ahead of their turn (entmoot_ops.pytest_plugin.concurrency), proven without a clock: the checks
here meet at a threading.Barrier, which only checks measuring at the same time can pass (one measured after the
other waits out the barrier's timeout and errs). Every environment points at closed loopback ports: nothing here
reaches a dependency, and nothing leaves the machine."""

from __future__ import annotations

import threading

import pytest

from conftest import ROOT
from custom_checks import environment_file, meeting, run_custom_checks
from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment


@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["one-process", "xdist-worker"])
def test_the_checks_of_an_environment_measure_at_the_same_time(tmp_path, workers):
    """In one process, or on an xdist worker, which measures ahead what xdist gave it."""
    environment_file(tmp_path / "environments", "one")
    done = run_custom_checks(tmp_path, meeting(["api.meeting-first", "api.meeting-second", "api.meeting-third"], 3),
                             "-m", "morning", "--env", "one", *workers)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout


def test_environments_measure_side_by_side_and_a_stuck_one_holds_no_other(tmp_path):
    """`stuck` measures one check at a time ([concurrency] reads = 1) and its check waits until every check of `free`
    has been measured: with threads shared between the environments, or environments measured one after the other,
    it would wait out its timeout."""
    environment_file(tmp_path / "environments", "free")
    environment_file(tmp_path / "environments", "stuck", "\n[concurrency]\nreads = 1\n")
    # free's two checks and stuck's first, which holds stuck's one thread while it waits
    done = run_custom_checks(tmp_path, meeting(["api.side-first"], 3) + '''
@pytest.mark.morning
@check(id="api.side-second", **COMMON)
def test_second(env):
    if env.name == "free":
        MEETING.wait()
    expect("measured", True, "==", True)
''', "-m", "morning", "--env", "stuck", "--env", "free")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout


@pytest.mark.parametrize("marker", ["chaos", "settles"])
def test_what_comes_after_an_action_or_a_settling_check_is_measured_after_it(tmp_path, marker):
    """A load run or an experiment changes the environment, the gate's rollout waits for it to settle: what comes
    after one in the run is measured after it."""
    environment_file(tmp_path / "environments", "one")
    action = "chaos.order-action" if marker == "chaos" else "api.order-action"
    done = run_custom_checks(tmp_path, f'''
        ORDER = []

        @pytest.mark.morning
        @check(id="api.order-before", **COMMON)
        def test_a_before(env):
            ORDER.append("before")
            expect("measured", True, "==", True)

        @pytest.mark.morning
        @pytest.mark.{marker}
        @check(id="{action}", **COMMON)
        def test_b_action(env):
            ORDER.append("action")
            expect("checks measured before it", ORDER, "==", ["before", "action"])

        @pytest.mark.morning
        @check(id="api.order-after", **COMMON)
        def test_c_after(env):
            ORDER.append("after")
            expect("what happened before this check", ORDER, "==", ["before", "action", "after"])
    ''', "-m", "morning", "--env", "one")
    assert "PASS     api.order-after" in done.stdout, done.stdout[-3000:]
    assert f"PASS     {action}" in done.stdout, done.stdout[-3000:]


@pytest.mark.parametrize("remediate", [False, True], ids=["check-mode", "remediate"])
def test_a_check_measured_before_a_remediation_acted_is_measured_again_in_its_turn(tmp_path, remediate):
    """What a check read before an earlier check's remediation acted may have changed since: on --remediate, it is
    measured again in its turn; in check mode nothing acts, and what it measured ahead stands. (The remediation here
    fails to act, its endpoints being closed ports: it has acted all the same, as far as what was read before goes.)"""
    environment_file(tmp_path / "environments", "one")
    done = run_custom_checks(tmp_path, '''
        MEASURED = []

        @pytest.mark.morning
        @check(id="ecs.acting-first", title="t", section="quick-reference", severity="high", remediation="ecs.scale-out",
               depends=("aws",))
        def test_a_broken(env):
            expect("broken", True, "==", False)

        @pytest.mark.morning
        @check(id="api.again-later", **COMMON)
        def test_b_read_before(env):
            MEASURED.append(threading.current_thread().name)
            expect("times measured", len(MEASURED), ">", 1)
    ''', "-m", "morning", "--env", "one", *(["--remediate"] if remediate else []))
    if remediate:
        assert "PASS     api.again-later" in done.stdout, done.stdout[-3000:]
    else:
        assert "FAIL     api.again-later" in done.stdout and "times measured: measured 1" in done.stdout, done.stdout[-3000:]


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
