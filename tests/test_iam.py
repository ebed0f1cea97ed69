"""IAM as a tested artifact: the policy of each mode, generated from what the code declares, and enforced by the
sandbox as AWS would; a missing action errs only the checks that need it, in one line that says how to fix it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import botocore.session
import pytest

from conftest import ROOT, checks_runner, settle
from entmoot_ops import iam
from entmoot_ops.aws_conventions import IAM_PREFIX
from entmoot_ops.clients.aws_guard import READ_ONLY_AWS
from entmoot_ops.config import load_environment
from entmoot_ops.sandbox.handle import start

CHECK_MARKERS = "morning or evening or deploy or handoff or incident or alerts or weekly or monthly"
# On a healthy sandbox no check errs without these: Logs Insights falls back to FilterLogEvents where it is denied,
# and the log reads (evidence) and the previous task definition (a rollback's plan) are read for failing checks only.
ONLY_WHEN_FAILING = {"logs:StartQuery", "logs:GetQueryResults", "logs:StopQuery", "logs:FilterLogEvents", "ecs:ListTaskDefinitions"}
FALLS_BACK = {"logs:StartQuery", "logs:GetQueryResults", "logs:StopQuery"}  # to FilterLogEvents: their callers do not err


def _policy(mode: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "entmoot_ops.cli", "iam-policy", mode, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def _actions(document: dict) -> set[str]:
    return {a for statement in document["Statement"] for a in statement["Action"]}


def _operations() -> dict[str, set[str]]:
    """Every IAM action botocore knows, by IAM prefix: an action in a policy must name a real operation."""
    session = botocore.session.get_session()
    known: dict[str, set[str]] = {}
    for service in session.get_available_services():
        model = session.get_service_model(service)
        prefix = IAM_PREFIX.get(model.signing_name, model.signing_name)
        known.setdefault(prefix, set()).update(model.operation_names)
    return known


def test_each_mode_prints_a_valid_least_privilege_policy():
    known = _operations()
    documents = {}
    for mode in iam.MODES:
        printed = _policy(mode)
        assert printed.returncode == 0, printed.stderr
        documents[mode] = document = json.loads(printed.stdout)
        assert document["Version"] == "2012-10-17"
        assert len({s["Sid"] for s in document["Statement"]}) == len(document["Statement"])
        for action in _actions(document):
            prefix, operation = action.split(":")
            assert operation in known.get(prefix, set()), f"{action} is no AWS operation"
    check = _actions(documents["check"])
    assert all(READ_ONLY_AWS.match(a.split(":")[1]) for a in check), "check mode may only read"
    assert {"logs:StartQuery", "elasticloadbalancing:DescribeTargetGroups", "ec2:DescribeInstanceTypes",
            "logs:GetQueryResults", "logs:StopQuery", "cloudwatch:DescribeAlarms"} <= check
    assert check < _actions(documents["remediate"]) and check < _actions(documents["chaos"])
    assert {"ecs:UpdateService", "rds:ModifyDBInstance", "elasticache:ModifyReplicationGroup"} <= _actions(documents["remediate"])
    assert {"ecs:StopTask", "rds:RebootDBInstance", "elasticache:TestFailover", "fis:StartExperiment"} <= _actions(documents["chaos"])
    assert _actions(documents["load"]) == check  # a load run's only writes are HTTP requests to the API


def test_the_policy_is_scoped_to_the_environment(environments):
    directory = environments("prod", replace={'region = "us-east-1"': 'region = "eu-west-1"\naccount_id = "123456789012"',
                                              'access_key_id = "env:ENTMOOT_SANDBOX_AWS_ACCESS_KEY_ID"':
                                              'access_key_id = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:entmoot/prod/aws-key"'})
    printed = _policy("remediate", "--env", "prod", "--environments-dir", str(directory))
    assert printed.returncode == 0, printed.stderr
    resources = {(a, r) for s in json.loads(printed.stdout)["Statement"] for a in s["Action"]
                 for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])}
    assert ("ecs:UpdateService", "arn:aws:ecs:eu-west-1:123456789012:service/entmoot-sandbox/entmoot-api") in resources
    assert ("rds:ModifyDBInstance", "arn:aws:rds:eu-west-1:123456789012:db:entmoot-sandbox") in resources
    assert ("logs:StartQuery", "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/entmoot-sandbox:*") in resources
    assert ("secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:entmoot/prod/aws-key-*") in resources
    assert ("cloudwatch:GetMetricData", "*") in resources  # AWS authorises metric reads on "*" only


def test_outside_the_project_the_command_says_where_to_run_it(tmp_path):
    printed = _policy("check", "--environments-dir", str(ROOT / "environments"), cwd=tmp_path)
    assert printed.returncode == 4 and not printed.stdout
    assert printed.stderr.count("\n") == 1 and "run it from the project's directory" in printed.stderr, printed.stderr


@pytest.fixture(scope="module")
def iam_sandbox(tmp_path_factory):
    """A sandbox of this module's own, with IAM enforced: each test below changes the users' policies."""
    handle = start(tmp_path_factory.mktemp("iam-sandbox") / "state.json")
    handle.users = 1
    environment = load_environment("sandbox", ROOT / "environments")
    handle.enforce_iam(iam.policies(environment))
    yield handle, environment
    handle.release()


def _checks_with_policy(iam_sandbox, tmp_path, check_policy: dict):
    handle, environment = iam_sandbox
    handle.enforce_iam({**iam.policies(environment), "check": check_policy})
    return checks_runner(handle, tmp_path)("-m", CHECK_MARKERS, "--expected-version", "1.4.2")


def _without(document: dict, action: str) -> dict:
    statements = [{**s, "Action": [a for a in s["Action"] if a != action]} for s in document["Statement"]]
    return {**document, "Statement": [s for s in statements if s["Action"]]}


def test_the_sandbox_enforces_iam_as_aws_answers_it(iam_sandbox):
    """moto's IAM, corrected: CloudWatch is authorised as cloudwatch:, and a JSON client's denial is JSON."""
    handle, environment = iam_sandbox
    handle.enforce_iam({**iam.policies(environment), "check": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "cloudwatch:DescribeAlarms", "Resource": "*"}]}})
    keys = handle.state["iam"]["check"]
    session = botocore.session.get_session()

    def client(service: str):
        return session.create_client(service, region_name="us-east-1", endpoint_url=handle.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"],
                                     aws_access_key_id=keys["ENTMOOT_SANDBOX_AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=keys["ENTMOOT_SANDBOX_AWS_SECRET_ACCESS_KEY"])

    assert "MetricAlarms" in client("cloudwatch").describe_alarms()  # granted as cloudwatch:, not monitoring:
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        client("logs").describe_log_groups()
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDeniedException", error
    assert error["Message"].endswith("is not authorized to perform: logs:DescribeLogGroups"), error
    with pytest.raises(botocore.exceptions.ClientError) as denied:
        client("rds").describe_db_instances()  # a query-protocol service: XML, as AWS answers it
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


@pytest.mark.e2e
def test_every_check_marker_passes_under_the_check_policy_and_each_missing_action_errs_exactly_its_checks(iam_sandbox, tmp_path):
    """Under the check policy, every check-mode marker passes with no denial (and so attempts no write: the policy
    holds none). Then each action is taken away in turn: exactly the checks that called it (each check's result
    records the IAM actions it called) err, each naming the action and the command that prints the policy. An action
    that no check's verdict called on a healthy sandbox is one read only for a failing check."""
    handle, environment = iam_sandbox
    policy = iam.policy("check", environment)
    baseline = _checks_with_policy(iam_sandbox, tmp_path, policy)
    assert baseline.returncode == 0, baseline.output[-3000:]
    assert "denied" not in baseline.output and "AccessDenied" not in baseline.output and len(baseline.results) > 50
    needs = {action: {r.check_id for r in baseline.results if action in r.aws_actions} for action in _actions(policy)}
    unused = {action for action, checks in needs.items() if not checks}
    assert unused <= ONLY_WHEN_FAILING, f"no check calls {sorted(unused - ONLY_WHEN_FAILING)}: the policy need not grant it"
    for action, checks in sorted((a, c) for a, c in needs.items() if c):
        handle.enforce_iam({**iam.policies(environment), "check": _without(policy, action)})
        run = checks_runner(handle, tmp_path / action.replace(":", "-"))(
            "-m", CHECK_MARKERS, "--expected-version", "1.4.2", *(arg for check in sorted(checks) for arg in ("--check", check)))
        errored = {r.check_id for r in run.results if r.outcome == "error"}
        assert errored == (set() if action in FALLS_BACK else checks), (action, run.output[-3000:])
        for result in (r for r in run.results if r.outcome == "error"):
            assert f"denied {action} (" in result.message, (action, result.message)
            assert "`entmoot-ops iam-policy check` prints the policy" in result.fix, result.fix


def _runs_with_mode_policies(iam_sandbox, tmp_path, **replaced: dict):
    handle, environment = iam_sandbox
    handle.enforce_iam({**iam.policies(environment), **replaced})
    return checks_runner(handle, tmp_path)


def test_remediate_acts_under_its_own_policy_and_a_missing_write_is_one_line(iam_sandbox, tmp_path):
    handle, environment = iam_sandbox
    remediate = iam.policy("remediate", environment)
    with handle.fault("rds_low_storage", free_ratio=0.05):
        settle(handle)
        denied = _runs_with_mode_policies(iam_sandbox, tmp_path, remediate=_without(remediate, "rds:ModifyDBInstance"))(
            "-m", "morning", "-k", "free_storage", "--remediate")
        assert denied.outcome("rds.free-storage") == "fail", denied.output[-3000:]
        assert "denied rds:ModifyDBInstance (AccessDenied)" in denied.output
        assert "`entmoot-ops iam-policy remediate` prints the policy" in denied.output
        run = _runs_with_mode_policies(iam_sandbox, tmp_path / "granted")("-m", "morning", "-k", "free_storage", "--remediate")
    assert run.outcome("rds.free-storage") == "fixed", run.output[-3000:]
    assert "denied" not in run.output


def test_the_preflight_asks_iam_what_is_missing_where_the_role_may_ask(iam_sandbox, tmp_path):
    handle, environment = iam_sandbox
    policy = _without(iam.policy("check", environment), "ec2:DescribeInstanceTypes")
    may_ask = {**policy, "Statement": [*policy["Statement"],
                                       {"Effect": "Allow", "Action": "iam:SimulatePrincipalPolicy", "Resource": "*"}]}
    told = _checks_with_policy(iam_sandbox, tmp_path / "may-ask", may_ask)
    said = [line for line in told.output.splitlines() if line.startswith("preflight [sandbox] ok")]
    assert len(said) == 1 and said[0].endswith("; IAM denies ec2:DescribeInstanceTypes: the checks that call them will err "
                                               "(`entmoot-ops iam-policy MODE` prints each mode's policy)"), said
    silent = _checks_with_policy(iam_sandbox, tmp_path / "may-not-ask", policy)
    assert "IAM denies" not in silent.output
    assert silent.outcome("postgres.pool-size") == told.outcome("postgres.pool-size") == "error"


def test_environments_with_the_same_access_ask_iam_once_a_run(iam_sandbox, monkeypatch):
    """Ten environments of one account ask IAM's policy simulator (whose rate is low) once, not ten times; another
    run asks again."""
    from entmoot_ops import preflight
    from entmoot_ops.clients import Clients

    handle, environment = iam_sandbox
    policy = _without(iam.policy("check", environment), "ec2:DescribeInstanceTypes")
    handle.enforce_iam({**iam.policies(environment), "check": {
        **policy, "Statement": [*policy["Statement"], {"Effect": "Allow", "Action": "iam:SimulatePrincipalPolicy", "Resource": "*"}]}})
    for name, value in {**handle.env, **handle.state["iam"]["check"]}.items():
        monkeypatch.setenv(name, value)
    simulated: list[str] = []
    Clients(environment).aws("iam").meta.events.register("before-call.iam.SimulatePrincipalPolicy",
                                                         lambda **_: simulated.append(environment.name))
    asked: dict = {}
    first = preflight.run(environment, remediate=False, asked=asked)
    twin = preflight.run(environment.model_copy(update={"name": "twin"}), remediate=False, asked=asked)
    assert first.iam_denied == twin.iam_denied == ["ec2:DescribeInstanceTypes"] and len(simulated) == 1
    assert preflight.run(environment, remediate=False).iam_denied == first.iam_denied and len(simulated) == 2
