"""Experiments users write: TOML files validated as strictly as environment files, FIS templates run end to end on
the sandbox, CloudWatch alarms as stop conditions, a game day's report, and an experiment that cannot act."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

import boto3
import pytest

from entmoot_ops.chaos import experiment_catalogue, files
from entmoot_ops.chaos.actions import ACTIONS, ActionContext
from entmoot_ops.chaos.experiment import Experiment, Step
from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment
from entmoot_ops.errors import ConfigError, OpsError
from entmoot_ops.probes import cloudwatch
from entmoot_ops.remediation import AuditLog
from entmoot_ops.sandbox import aws as sandbox_aws

from conftest import ROOT
from test_aws_answers import clients, endpoint  # noqa: F401 - fixtures: an AWS-compatible endpoint on loopback

DOCS_EXAMPLE = re.compile(r"```toml\n# experiments/api-rds-latency\.toml\n(.*?)```", re.S)
HEAD = 'title = "t"\nsection = "redis-connection-issues"\n'
METHOD = '\n[[method]]\naction = "kill"\ncomponent = "redis"\n'
VALID = HEAD + METHOD


def test_the_suites_own_experiments_are_files_of_the_project():
    found = experiment_catalogue.experiments(ROOT)
    assert len(found) == 18 and all(e.path.startswith(str(ROOT / "experiments")) for e in found.values())
    assert found["fis-stop-api-tasks"].method == (Step("fis-experiment", {"template": "entmoot-stop-api-tasks"}),)
    assert found["slow-redis"].method == (Step("slow-dependency", {"dependency": "redis", "ms": 1500}),)
    assert found["lose-api-tasks"].platform == "aws" and found["kill-redis"].platform == "sandbox"


@pytest.mark.parametrize(("text", "said"), [
    (HEAD + "colour = 1\n" + METHOD, "mine.toml: colour: Extra inputs are not permitted"),
    (VALID.replace('"redis-connection-issues"', '"nowhere"'), "section: Input should be"),
    (VALID.replace('component = "redis"', 'component = "kafka"'), "method.0.kill.component: Input should be"),
    (VALID.replace('component = "redis"', 'component = "redis"\nms = 3'), "method.0.kill.ms: Extra inputs are not permitted"),
    (VALID.replace('action = "kill"', 'action = "explode"'), "method.0: Input tag 'explode' found using 'action'"),
    (VALID.replace('action = "kill"\ncomponent = "redis"', 'action = "slow-dependency"\ndependency = "redis"\nms = "300"'),
     "method.0.slow-dependency.ms: Input should be a valid number"),
    (HEAD + 'blast_radius = ["kafka"]\n' + METHOD, "mine.toml: blast_radius.0: Input should be"),
    (VALID + "[deadlines]\ndetection_seconds = -1\n", "deadlines.detection_seconds: Input should be greater than 0"),
    (HEAD, "mine.toml: method: Field required"),
    ("title = \n", "not valid TOML"),
])
def test_a_wrong_experiment_file_is_one_line_naming_the_file_and_the_key(tmp_path, text, said):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as wrong:
        files.load_file(path)
    assert str(wrong.value).startswith(f"{path}: ") and said in str(wrong.value), str(wrong.value)
    assert len(str(wrong.value).splitlines()) == 1


def test_a_wrong_experiment_file_stops_only_a_chaos_run_that_selects_it(sandbox, run_checks, tmp_path, environments):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "slow-primary.toml").write_text(HEAD + 'blast_raduis = ["postgres"]\n' + METHOD)
    (tmp_path / "mine" / "Bad_Name.toml").write_text(VALID)
    directory = environments(replace={"[chaos]\n": f'[chaos]\nexperiments_dir = "{tmp_path / "mine"}"\n'})
    morning = run_checks("-m", "morning", "-k", "api_health", "--environments-dir", str(directory))
    assert morning.returncode == 0 and morning.outcome("api.health") == "pass", morning.output[-2000:]
    assert "slow-primary" not in morning.output and "Bad_Name" not in morning.output

    for selection, said in ((("--check", "chaos.slow-primary"), "slow-primary.toml: blast_raduis: Extra inputs are not permitted"),
                            ((), "Bad_Name.toml: the file name must be the experiment's name")):
        refused = run_checks("-m", "chaos", *selection, "--environments-dir", str(directory))
        assert refused.returncode == 4 and not refused.results, refused.output[-2000:]
        assert [line for line in refused.output.splitlines() if str(tmp_path / "mine") in line] == [
            next(line for line in refused.output.splitlines() if said in line)], refused.output[-2000:]
        assert "Traceback" not in refused.output
    listed = run_checks("-m", "chaos", "--check", "chaos.kill-redis", "--collect-only", "-q", "--environments-dir", str(directory))
    assert listed.returncode == 0 and "test_kill_redis[sandbox]" in listed.output, listed.output[-2000:]  # not selected: not read


def test_chaos_validate_says_each_wrong_file_in_one_line(tmp_path, environments):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "slow-primary.toml").write_text(HEAD + 'blast_raduis = ["postgres"]\n' + METHOD)
    (tmp_path / "mine" / "freeze-it.toml").write_text(VALID.replace('"kill"', '"freeze"'))
    directory = environments(replace={"[chaos]\n": f'[chaos]\nexperiments_dir = "{tmp_path / "mine"}"\n'})
    done = subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "chaos", "validate", "--environments-dir", str(directory)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env=_without_sandbox_endpoints())
    assert done.returncode == 4, done.stdout + done.stderr
    assert done.stderr.splitlines() == [f"entmoot-ops: {tmp_path / 'mine' / 'slow-primary.toml'}: blast_raduis: Extra inputs are "
                                        "not permitted (got ('postgres',))"]
    assert done.stdout == f"{len(experiment_catalogue.experiments(ROOT)) + 1} experiment files valid, 1 not\n"


@pytest.mark.parametrize(("extra", "said"), [
    ('detectors = ["api.helth"]\n', "mine.toml: detectors.0: no check 'api.helth' (did you mean api.health?)"),
    ('steady_state = "mornin"\n', "mine.toml: steady_state: no checklist or component 'mornin' (did you mean morning?)"),
])
def test_a_chaos_run_refuses_an_experiment_naming_a_check_or_checklist_that_does_not_exist(tmp_path, environments, extra, said):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "mine.toml").write_text(HEAD + extra + METHOD)
    directory = environments(replace={"[chaos]\n": f'[chaos]\nexperiments_dir = "{tmp_path / "mine"}"\n'})
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "chaos", "--environments-dir", str(directory)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env=_without_sandbox_endpoints())
    assert done.returncode == 4 and said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_an_experiment_of_one_environment_is_refused_on_another(tmp_path, environments):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "mine.toml").write_text(VALID)
    env = load_environment("sandbox", environments(replace={"[chaos]\n": f'[chaos]\nexperiments_dir = "{tmp_path / "mine"}"\n'}))
    mine = experiment_catalogue.select(tmp_path, [env])["mine"]
    other = env.model_copy(update={"name": "staging"})
    from entmoot_ops.chaos import guard

    assert guard.refusal(other, mine) == f"mine is an experiment of sandbox ({tmp_path / 'mine' / 'mine.toml'}), not of staging"


# --------------------------------------------------------------------------------------------- the sandbox's FIS
def _fis(sandbox):
    return boto3.client("fis", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                        **sandbox_aws.CREDENTIALS)


def _template(fis, name: str) -> str:
    return next(t["id"] for t in fis.list_experiment_templates()["experimentTemplates"] if t.get("tags", {}).get("Name") == name)


def _until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the wait"
        time.sleep(0.2)


def test_the_sandboxs_fis_respects_its_templates_alarm_stop_condition(sandbox):
    fis = _fis(sandbox)
    started = fis.start_experiment(experimentTemplateId=_template(fis, sandbox_aws.FIS_RDS_LATENCY), clientToken="stop-condition")
    experiment = started["experiment"]["id"]
    try:
        assert started["experiment"]["state"]["status"] == "running"
        assert "dependency_latency" in sandbox.control("GET", "state")["faults"]
        sandbox.inject("alarm", name=sandbox_aws.ALARMS[0])
        _until(lambda: fis.get_experiment(id=experiment)["experiment"]["state"]["status"] == "stopped")
        state = fis.get_experiment(id=experiment)["experiment"]["state"]
        assert state["reason"] == f"Experiment stopped by stop condition {sandbox_aws.ALARMS[0]}"
        assert "dependency_latency" not in sandbox.control("GET", "state")["faults"]
    finally:
        sandbox.undo("alarm")
        fis.stop_experiment(id=experiment)


def test_an_fis_action_the_sandbox_cannot_run_fails_the_experiment_with_the_reason(sandbox):
    fis = _fis(sandbox)
    template = fis.create_experiment_template(
        clientToken="unknown-source", description="latency to somewhere the sandbox has no path to", roleArn="arn:aws:iam::123456789012:role/r",
        stopConditions=[{"source": "none"}], targets={"t": {"resourceType": "aws:ecs:task", "selectionMode": "ALL",
                                                             "parameters": {"cluster": "c", "service": "s"}}},
        actions={"a": {"actionId": "aws:ecs:task-network-latency", "targets": {"Tasks": "t"},
                       "parameters": {"delayMilliseconds": "300", "duration": "PT1M", "sources": "example.org"}}})["experimentTemplate"]
    state = fis.start_experiment(experimentTemplateId=template["id"], clientToken="unknown-source")["experiment"]["state"]
    assert state == {"status": "failed", "reason": "source example.org is neither an RDS instance's endpoint nor an ElastiCache "
                                                  "one (the sandbox's network faults stand between its API and those)"}
    assert sandbox.control("GET", "state")["faults"] == []


# --------------------------------------------------------------------------------------------- stop conditions
def test_an_alarm_stop_condition_aborts_within_one_poll_and_rolls_back(sandbox, chaos_runner_for):
    """The watcher reads the stop conditions at each poll: the first read that sees ALARM ends the experiment."""
    slow = Experiment("slow-redis-stopped", "Redis slowed until the alarm fires", "redis-connection-issues", "sandbox",
                      (Step("slow-dependency", {"dependency": "redis", "ms": 300}),), detectors=("postgres.connections",),
                      stop_alarms=(sandbox_aws.ALARMS[0],), steady_state="hosts and morning")
    runner, reads = chaos_runner_for("slow-redis-stopped")

    def fire_once_injected() -> None:
        _until(lambda: "dependency_latency" in sandbox.control("GET", "state")["faults"])
        sandbox.inject("alarm", name=sandbox_aws.ALARMS[0])
    firing = threading.Thread(target=fire_once_injected)
    firing.start()
    try:
        journal = runner.run(slow)
    finally:
        firing.join()
        sandbox.undo("alarm")
    assert journal.status == "aborted" and journal.reason == f"stop condition: alarm {sandbox_aws.ALARMS[0]} entered ALARM"
    seen = [states.get(sandbox_aws.ALARMS[0]) for states in reads]
    assert seen.count("ALARM") == 1 and seen[-1] == "ALARM", seen  # no poll after the one that saw it
    assert journal.rollbacks == [{"action": "slow-dependency", "ok": True}] and journal.stop_alarms == [sandbox_aws.ALARMS[0]]
    assert sandbox.control("GET", "state")["faults"] == []


def test_a_stop_condition_in_alarm_or_missing_means_the_experiment_is_not_run(sandbox, chaos_runner_for):
    for alarm, said in (("entmoot-no-such-alarm", "stop condition alarm entmoot-no-such-alarm does not exist"),
                        (sandbox_aws.ALARMS[0], f"stop condition alarm {sandbox_aws.ALARMS[0]} is in ALARM")):
        kill = Experiment("kill-redis-guarded", "never starts", "redis-connection-issues", "sandbox",
                          (Step("kill", {"component": "redis"}),), stop_alarms=(alarm,), steady_state="hosts and morning")
        runner, _ = chaos_runner_for("kill-redis-guarded")
        if alarm == sandbox_aws.ALARMS[0]:
            sandbox.inject("alarm", name=alarm)
        try:
            journal = runner.run(kill)
        finally:
            if alarm == sandbox_aws.ALARMS[0]:
                sandbox.undo("alarm")
        assert journal.status == "not-run" and journal.reason == said and journal.rollbacks == []
    assert sandbox.control("GET", "state")["faults"] == []


# --------------------------------------------------------------------------------------------- acting on AWS
def test_an_aws_action_the_endpoint_cannot_serve_is_one_line(endpoint, clients, tmp_path):  # noqa: F811 - fixtures
    endpoint.reply("DescribeReplicationGroups", 200, _replication_group(), kind="text/xml")
    endpoint.reply("TestFailover", 500, "<html><body><h1>500 Internal Server Error</h1></body></html>", kind="text/html")
    writable = Clients(clients.env, writable=True)
    context = ActionContext(clients.env, clients, writable, AuditLog(tmp_path / "audit.jsonl"), "failover")
    try:
        with pytest.raises(OpsError) as refused:
            ACTIONS["elasticache-failover"].start(context, {})
    finally:
        writable.close()
    text = str(refused.value)
    assert text == ("AWS ElastiCache refused the request: unexpected answer from AWS ElastiCache elasticache:TestFailover: "
                    "HTTP 500, not an AWS error body (HTML of 60 characters)"), text


def test_an_experiment_whose_target_has_nothing_to_act_on_ends_in_one_line_and_rolls_back(sandbox, chaos_runner_for):
    both = Experiment("slow-then-stop", "Redis slowed, then the tasks of a service that runs none", "scaling-api-servers",
                      "sandbox", (Step("slow-dependency", {"dependency": "redis", "ms": 300}), Step("ecs-stop-tasks", {"fraction": 0.34})),
                      detectors=("api.health",), steady_state="hosts and morning")
    runner, _ = chaos_runner_for("slow-then-stop", replace={'service = "entmoot-api"': 'service = "entmoot-none"'})
    journal = runner.run(both)
    assert journal.status == "error" and journal.reason == "entmoot-none has no running task to stop", journal.reason
    assert journal.rollbacks == [{"action": "slow-dependency", "ok": True}]
    assert sandbox.control("GET", "state")["faults"] == []


# --------------------------------------------------------------------------------------------- a game day
@pytest.mark.e2e
def test_a_game_day_runs_a_users_fis_experiment_and_writes_its_report_with_a_chart(sandbox, environments, tmp_path):
    """The example file of docs/chaos.md, in a directory of the user's: an FIS template of the sandbox's account, a stop
    condition, an expected detector; then one of the suite's own. One report, in order, with a chart."""
    mine = tmp_path / "experiments"
    mine.mkdir()
    (mine / "api-rds-latency.toml").write_text(DOCS_EXAMPLE.search((ROOT / "docs" / "chaos.md").read_text()).group(1))
    directory = environments(replace={"[chaos]\n": f'[chaos]\nexperiments_dir = "{mine}"\n',
                                      'experiments = ["kill-redis"': 'experiments = ["api-rds-latency", "kill-redis"'})
    reports = tmp_path / "reports"
    done = subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "chaos", "gameday", "--env", "sandbox", "--environments-dir",
                           str(directory), "--experiments", "api-rds-latency,flush-cache", "--pause", "1", "--reports-dir", str(reports)],
                          cwd=ROOT, capture_output=True, text=True, timeout=400,
                          env={**_without_sandbox_endpoints(), "ENTMOOT_SANDBOX_STATE": str(sandbox.state_file)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    report = json.loads(next((reports / "gameday").glob("gameday-sandbox-*.json")).read_text())
    rows = {row["experiment"]: row for row in report["experiments"]}
    assert list(rows) == ["api-rds-latency", "flush-cache"]
    assert rows["api-rds-latency"]["detected"] == "yes" and rows["api-rds-latency"]["detection_seconds"] > 0
    assert rows["api-rds-latency"]["recovery_seconds"] is not None and rows["api-rds-latency"]["false_alarms"] == []
    assert rows["flush-cache"]["detected"] == "nothing to detect" and rows["flush-cache"]["status"] == "completed"
    fis_journal = report["journals"][0]
    assert fis_journal["stop_alarms"] == [sandbox_aws.ALARMS[0]]  # the file's own and its template's: the same alarm
    assert fis_journal["rollbacks"] == [{"action": "fis-experiment", "ok": True}]
    page = next((reports / "gameday").glob("gameday-sandbox-*.html")).read_text()
    assert "data:image/png;base64," in page and "2 of 2 experiments held" in page
    assert next((reports / "gameday").glob("gameday-sandbox-*.png")).read_bytes().startswith(b"\x89PNG")
    allure = [json.loads(p.read_text()) for p in (reports / "allure-results").glob("*-result.json")]
    day = next(r for r in allure if r["name"] == "Game day on sandbox")
    assert day["status"] == "passed" and {a["type"] for a in day["attachments"]} == {"text/html", "image/png"}
    assert sandbox.control("GET", "state")["faults"] == []


def test_a_game_day_runs_its_experiments_in_the_order_given():
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "chaos", "--gameday", "slow-redis,flush-cache",
                           "--check", "chaos.kill-api", "--collect-only", "-q"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=_without_sandbox_endpoints())
    listed = [line.split("::")[1].split("[")[0] for line in done.stdout.splitlines() if "::" in line]
    assert listed == ["test_slow_redis", "test_flush_cache", "test_kill_api"], done.stdout + done.stderr


def test_a_game_day_against_several_environments_is_refused_in_one_line(tmp_path):
    """Its report is one environment's: two would mix their journals in it."""
    (tmp_path / "other.toml").write_text((ROOT / "environments" / "sandbox.toml").read_text())
    (tmp_path / "sandbox.toml").write_text((ROOT / "environments" / "sandbox.toml").read_text())
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "chaos", "--gameday", "flush-cache", "--env", "sandbox",
                           "--env", "other", "--environments-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=_without_sandbox_endpoints())
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ERROR: a game day is against one environment, not 2 (sandbox, other): give one --env" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_game_day_on_an_environment_whose_preflight_failed_ends_at_once_in_one_line(tmp_path):
    """staging.toml as a template leaves it (placeholders, no secrets), chaos allowed, no AWS credentials: the
    experiment is not run, with no observation and no wait for a steady state that cannot hold."""
    text = (ROOT / "environments" / "staging.toml").read_text() + '\n[chaos]\nallowed = true\nexperiments = ["lose-api-tasks"]\n'
    (tmp_path / "staging.toml").write_text(text)
    environment = {**_without_sandbox_endpoints(), "HOME": str(tmp_path)}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        environment.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "chaos", "gameday", "--env", "staging", "--environments-dir",
                           str(tmp_path), "--reports-dir", str(tmp_path / "reports")], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=environment)
    assert done.returncode == 1 and "ERROR    chaos.lose-api-tasks" in done.stdout, done.stdout[-2000:]
    assert "not run: the preflight of staging failed" in done.stdout and "steady state" not in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_game_day_of_an_unknown_experiment_is_refused_before_anything_starts(tmp_path):
    done = subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "chaos", "gameday", "--experiments", "kill-redsi"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env=_without_sandbox_endpoints())
    assert done.returncode == 4 and done.stderr.strip().splitlines()[-1].startswith("entmoot-ops: no experiment kill-redsi; did you mean kill-redis?")


# --------------------------------------------------------------------------------------------- helpers
@pytest.fixture
def chaos_runner_for(sandbox, environments, monkeypatch, tmp_path):
    """A runner as the -m chaos check builds it, whose stop-condition reads are kept."""
    from entmoot_ops.chaos import observe
    from entmoot_ops.chaos.experiment import Runner

    for name, value in {**sandbox.env, **sandbox.state["iam"]["chaos"]}.items():  # as a -m chaos run signs
        monkeypatch.setenv(name, value)
    opened: list[Clients] = []

    def make(name: str, replace: dict[str, str] | None = None) -> tuple[Runner, list[dict[str, str]]]:
        directory = environments(replace={"detection_timeout_seconds = 60\n": "detection_timeout_seconds = 20\n", **(replace or {})})
        env = load_environment("sandbox", directory)
        readonly, writable = Clients(env), Clients(env, writable=True)
        opened.extend((readonly, writable))
        reads: list[dict[str, str]] = []

        def alarms(names: list[str]) -> dict[str, str]:
            reads.append(cloudwatch.alarm_states(readonly, names))
            return reads[-1]
        checks = observe.CheckRunner(ROOT / "checks", "sandbox", directory, {"ENTMOOT_SANDBOX_STATE": str(sandbox.state_file)})
        context = ActionContext(env, readonly, writable, AuditLog(tmp_path / "audit.jsonl"), name, sandbox)
        return Runner(checks, context, tmp_path / "chaos", lambda guard, since: observe.SAFEGUARDS[guard](readonly, since), alarms), reads

    yield make
    for made in opened:
        made.close()


def _without_sandbox_endpoints() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ENTMOOT_")}


def _replication_group() -> str:
    return ("<DescribeReplicationGroupsResponse><DescribeReplicationGroupsResult><ReplicationGroups><ReplicationGroup>"
            "<ReplicationGroupId>entmoot-redis-sandbox</ReplicationGroupId><NodeGroups><NodeGroup><NodeGroupId>0001</NodeGroupId>"
            "</NodeGroup></NodeGroups></ReplicationGroup></ReplicationGroups></DescribeReplicationGroupsResult>"
            "</DescribeReplicationGroupsResponse>")
