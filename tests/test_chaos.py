"""Chaos experiments on the sandbox: every experiment end to end, and the runner's guarantees (rollback when
the method raises, abort by a safeguard, a failed rollback said loudly, Ctrl-C, refusals)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from entmoot_ops.chaos import experiment_catalogue, observe
from entmoot_ops.chaos.actions import ActionContext
from entmoot_ops.chaos.experiment import Experiment, Runner, Step
from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment
from entmoot_ops.remediation import AuditLog

from conftest import ROOT, background_traffic, default_signals
from test_notify import notify_secrets, notify_settings



# Every experiment of the project's files, in three runs that xdist's workers share (each on its own sandbox).
THIRDS = [list(experiment_catalogue.experiments(ROOT))[i::3] for i in range(3)]


def test_the_end_to_end_runs_cover_the_whole_catalog():
    assert sorted(name for third in THIRDS for name in third) == sorted(experiment_catalogue.experiments(ROOT))


@pytest.mark.e2e
@pytest.mark.parametrize("names", THIRDS, ids=["first-third", "second-third", "last-third"])
def test_every_experiment_end_to_end(names, sandbox, run_checks, environments, sink, tmp_path):
    """Each experiment passes, rolls back and writes its journal. Slack, PagerDuty and a webhook are configured, and
    a metrics textfile: the checks an experiment observes are its instrument, they tell no channel and export
    nothing (they left six incidents open per experiment); the experiments' own passing verdicts change nothing."""
    metrics = tmp_path / "textfiles"
    directory = environments(replace={"[thresholds]\n": notify_settings(sink, None) + f'[metrics]\ntextfile_dir = "{metrics}"\n\n'
                                      + "[thresholds]\n"})
    run = run_checks("-m", "chaos", *(f"--check=chaos.{name}" for name in names), "--environments-dir", str(directory),
                     env=notify_secrets(sink), timeout=600)
    assert {r.check_id for r in run.results} == {f"chaos.{name}" for name in names}
    assert run.by_outcome().keys() == {"pass"}, run.output[-4000:]
    assert not sink.received, [(m.path, m.body) for m in sink.received]
    assert [path.name for path in metrics.iterdir()] == ["entmoot_sandbox_chaos.prom"], list(metrics.iterdir())
    journals = {}
    for path in (run.reports / "chaos" / "sandbox").glob("*.json"):
        journal = json.loads(path.read_text())
        journals[journal["experiment"]] = journal
    assert journals.keys() == set(names)
    for name, journal in journals.items():
        steps = [s["step"] for s in journal["timeline"]]
        assert steps[0] == "steady state before" and "action" in steps and steps[-1] == "end", (name, steps)
        assert journal["status"] == "completed" and journal["recovery_seconds"] is not None, journal
        for check_id, seconds in journal["detection_seconds"].items():
            assert seconds is not None and seconds <= 30, (name, check_id, seconds)
    print("chaos recovery seconds:", {n: j["recovery_seconds"] for n, j in sorted(journals.items())})
    print("chaos detection seconds:", {n: j["detection_seconds"] for n, j in sorted(journals.items()) if j["detection_seconds"]})
    audit = [json.loads(line) for line in (run.reports / "audit.jsonl").read_text().splitlines()]
    injected = [a for a in audit if a["event"] == "injected"]
    assert len(injected) == len(names) and all(a["who"] for a in injected)
    assert sandbox.control("GET", "state")["faults"] == []
    timelines = {a["name"] for r in run.reports.joinpath("allure-results").glob("*-result.json")
                 for a in json.loads(r.read_text()).get("attachments", []) if a["type"] == "image/png"}
    assert timelines == {f"timeline of {name}" for name in names}


@pytest.fixture
def runner(sandbox, environments, monkeypatch, tmp_path):
    """The runner as the -m chaos check builds it, for experiments the catalog does not hold."""
    for name, value in {**sandbox.env, **sandbox.state["iam"]["chaos"]}.items():  # as a -m chaos run signs
        monkeypatch.setenv(name, value)
    opened: list[Clients] = []

    def make(name: str, settings: str = "detection_timeout_seconds = 8\n") -> Runner:
        directory = environments(replace={"detection_timeout_seconds = 60\n": settings})
        env = load_environment("sandbox", directory)
        readonly, writable = Clients(env), Clients(env, writable=True)
        opened.extend((readonly, writable))
        checks = observe.CheckRunner(ROOT / "checks", "sandbox", directory, {"ENTMOOT_SANDBOX_STATE": str(sandbox.state_file)})
        context = ActionContext(env, readonly, writable, AuditLog(tmp_path / "audit.jsonl"), name, sandbox)
        return Runner(checks, context, tmp_path / "chaos", lambda guard, since: observe.SAFEGUARDS[guard](readonly, since))

    yield make
    for clients in opened:
        clients.close()


def _redis_up(sandbox) -> bool:
    return sandbox.pids["redis"] is not None and "component_killed" not in sandbox.control("GET", "state")["faults"]


def test_the_rollback_runs_when_the_method_raises(sandbox, runner):
    twice = Experiment("kill-twice", "a method whose second step fails", "redis-connection-issues", "sandbox",
                       (Step("kill", {"component": "redis"}), Step("kill", {"component": "redis"})), detectors=("redis.reachable",))
    journal = runner("kill-twice").run(twice)
    assert journal.status == "error" and "already active" in journal.reason, journal.reason
    assert journal.rollbacks == [{"action": "kill", "ok": True}] and _redis_up(sandbox)


def test_a_safeguard_aborts_and_rolls_back_at_once(sandbox, runner):
    errors = Experiment("api-errors", "every request fails", "high-api-error-rate", "sandbox", (Step("api-errors", {"rate": 1.0}),),
                        detectors=("api.latency-p95",))  # never detected: only the safeguard can end it early
    started = time.monotonic()
    with background_traffic(sandbox):
        journal = runner("api-errors").run(errors)
    assert journal.status == "aborted" and "safeguard breached: API 5XX ratio" in journal.reason, journal.reason
    assert "(abort above 50.00%)" in journal.reason and time.monotonic() - started < 8 + 10, journal.timeline
    assert journal.rollbacks == [{"action": "api-errors", "ok": True}]
    assert journal.recovery_seconds is not None  # the steady state came back after the abort
    assert sandbox.control("GET", "state")["faults"] == []


def test_the_hard_time_limit_aborts_and_rolls_back(sandbox, runner):
    never = Experiment("freeze-redis-unseen", "a detector that never fires", "redis-connection-issues", "sandbox",
                       (Step("freeze", {"component": "redis"}),), detectors=("postgres.connections",))
    started = time.monotonic()
    journal = runner("freeze-redis-unseen", "detection_timeout_seconds = 60\ntime_limit_seconds = 5\n").run(never)
    assert journal.status == "aborted" and journal.reason == "time limit of 5 s reached", journal.reason
    assert journal.rollbacks == [{"action": "freeze", "ok": True}] and time.monotonic() - started < 30
    assert sandbox.control("GET", "state")["faults"] == []


def test_a_failed_rollback_fails_loudly_and_says_what_is_left(sandbox, runner, run_checks):
    kill = Experiment("kill-redis-long", "Redis killed, someone else restarts it meanwhile", "redis-connection-issues", "sandbox",
                      (Step("kill", {"component": "redis"}),), detectors=("postgres.connections",))  # held for the timeout
    def meddle() -> None:  # once the experiment has killed Redis, whenever that is on this machine
        deadline = time.monotonic() + 60
        while "component_killed" not in sandbox.control("GET", "state")["faults"] and time.monotonic() < deadline:
            time.sleep(0.1)
        sandbox.undo("component_killed")

    meddler = threading.Thread(target=meddle)
    meddler.start()
    journal = runner("kill-redis-long").run(kill)
    meddler.join()
    assert journal.status == "rollback-failed", journal.status
    assert journal.reason.startswith("ROLLBACK FAILED, left broken: kill the redis server: rollback failed"), journal.reason
    assert "not active" in journal.reason and journal.recovery_seconds is None


@pytest.mark.e2e
def test_ctrl_c_rolls_back_and_ends_the_run(sandbox, environments, tmp_path):
    directory = environments()
    reports = tmp_path / "reports"
    environ = {**os.environ, "ENTMOOT_SANDBOX_STATE": str(sandbox.state_file)}
    process = subprocess.Popen([sys.executable, "-m", "pytest", "checks/", "-m", "chaos", "--check", "chaos.flush-cache",
                                "--check", "chaos.freeze-replica", "--environments-dir", str(directory), "--reports-dir", str(reports)],
                               cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               preexec_fn=default_signals)
    deadline = time.monotonic() + 60
    while "component_frozen" not in sandbox.control("GET", "state")["faults"]:
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    output = process.communicate(timeout=30)[0]
    assert process.returncode == 2 and "KeyboardInterrupt" in output, output[-3000:]
    assert sandbox.control("GET", "state")["faults"] == []
    journal = json.loads(max((reports / "chaos" / "sandbox").glob("freeze-replica-*.json")).read_text())
    assert journal["status"] == "interrupted" and journal["rollbacks"] == [{"action": "freeze", "ok": True}]


@pytest.mark.parametrize(("replace", "args", "said"), [
    ({"[chaos]\nallowed = true\n": "[chaos]\nallowed = false\n"}, (),
     "chaos.allowed is not true for sandbox: chaos experiments against it are refused"),
    ({'kind = "sandbox"\nproduction = false\n': 'kind = "sandbox"\nproduction = true\n'}, (),
     "sandbox is production: a chaos experiment needs --yes"),
])
def test_chaos_without_the_opt_in_is_refused_in_one_line(sandbox, run_checks, environments, replace, args, said):
    run = run_checks("-m", "chaos", "--environments-dir", str(environments(replace=replace)), *args)
    assert run.returncode == 4 and said in run.output, run.output[-2000:]
    assert "Traceback" not in run.output and not run.results


NOT_ALLOWED = {"primary_allowed = true\n": "primary_allowed = false\n", '"kill-redis", "freeze-redis", ': ""}


def test_experiments_outside_the_allow_list_or_on_the_primary_are_skipped_with_the_reason(sandbox, run_checks, environments):
    run = run_checks("-m", "chaos", "-k", "kill_redis or kill_primary", "--environments-dir", str(environments(replace=NOT_ALLOWED)))
    assert run.outcome("chaos.kill-redis") == "skip" and run.outcome("chaos.kill-primary") == "skip", run.output[-2000:]
    assert "refused: kill-redis is not in chaos.experiments of sandbox.toml" in run.result("chaos.kill-redis").message
    assert "acts on the primary database; chaos.primary_allowed is not true" in run.result("chaos.kill-primary").message
    assert sandbox.control("GET", "state")["faults"] == []


@pytest.mark.parametrize(("experiment", "said"), [
    ("kill-redis", 'kill-redis is not in chaos.experiments of sandbox.toml (add "kill-redis" to [chaos] experiments in sandbox.toml)'),
    ("kill-primary", "kill-primary acts on the primary database; chaos.primary_allowed is not true for sandbox "
                     "(set [chaos] primary_allowed = true in sandbox.toml)"),
])
def test_an_experiment_asked_for_by_name_that_is_not_allowed_is_refused_in_one_line(sandbox, run_checks, environments,
                                                                                    experiment, said):
    run = run_checks("-m", "chaos", "--check", f"chaos.{experiment}", "--environments-dir", str(environments(replace=NOT_ALLOWED)))
    assert run.returncode == 4 and f"ERROR: {said}\n" in run.output, run.output[-2000:]
    assert "Traceback" not in run.output and not run.results
    assert sandbox.control("GET", "state")["faults"] == []


def test_stopping_more_tasks_than_the_blast_radius_allows_is_refused(sandbox, runner):
    greedy = Experiment("lose-most-tasks", "two thirds of the tasks", "scaling-api-servers", "aws",
                        (Step("ecs-stop-tasks", {"fraction": 0.67}),), detectors=("ecs.service-steady",))
    journal = runner("lose-most-tasks").run(greedy)
    assert journal.status == "error", journal.reason
    assert "stopping 2 of 3 tasks (67%) exceeds chaos.max_task_fraction 34%" in journal.reason
    assert not journal.rollbacks


def test_a_broken_steady_state_means_the_experiment_is_not_run(sandbox, run_checks):
    with sandbox.fault("replica_paused"):
        run = run_checks("-m", "chaos", "--check", "chaos.kill-redis")
    result = run.result("chaos.kill-redis")
    assert result.outcome == "error" and "not run: steady state did not hold: replication.lag FAIL" in result.message, run.output
    audit = [json.loads(line) for line in (run.reports / "audit.jsonl").read_text().splitlines()]
    assert [a["event"] for a in audit] == ["experiment not-run"]


def test_a_detection_slower_than_its_deadline_fails_the_check_with_value_threshold_and_remediation(sandbox, run_checks,
                                                                                                    environments):
    directory = environments(replace={"detection_timeout_seconds = 60\n": "detection_timeout_seconds = 0.01\n"})
    run = run_checks("-m", "chaos", "--check", "chaos.kill-redis", "--environments-dir", str(directory))
    failed = run.result("chaos.kill-redis")
    assert failed.outcome == "fail", run.output[-3000:]
    assert "seconds until redis.reachable detected the fault (inf: never): measured " in failed.message
    assert "threshold <= 0.01 s" in failed.message and "-> remediation chaos.detection-gap" in failed.message
    assert sandbox.control("GET", "state")["faults"] == []
