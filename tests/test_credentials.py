"""Credentials: an API-key header instead of Bearer, and secrets read from AWS Secrets Manager."""

from __future__ import annotations

import boto3

from conftest import ROOT
from entmoot_ops import iam
from entmoot_ops.config import load_environment
from entmoot_ops.sandbox import aws as sandbox_aws

TOKEN_REF = 'auth = { scheme = "bearer", secret = "env:ENTMOOT_SANDBOX_API_TOKEN" }'


def test_api_key_header_auth(run_checks, environments):
    directory = environments(replace={TOKEN_REF: 'auth = { scheme = "header", header = "X-Api-Key", secret = "env:ENTMOOT_SANDBOX_API_TOKEN" }'})
    run = run_checks("-m", "morning", "-k", "api_health or auth_enforced", "--environments-dir", str(directory))
    assert run.by_outcome() == {"pass": {"api.health", "api.auth-enforced"}}, run.output[-2000:]


def test_wrong_api_key_is_caught_although_health_is_public(run_checks, environments):
    """/health answers anyone, as on the real API: only a protected route shows that the key is wrong."""
    directory = environments(replace={TOKEN_REF: 'auth = { scheme = "header", header = "X-Api-Key", secret = "env:WRONG_KEY" }'})
    run = run_checks("-m", "morning", "-k", "api_health or auth_enforced", "--environments-dir", str(directory),
                     env={"WRONG_KEY": "not-the-key"})
    assert run.outcome("api.health") == "pass"
    refused = run.result("api.auth-enforced")
    assert refused.outcome == "error" and refused.junit == "error"
    assert "the API refused the configured credential (HTTP 401 on " in refused.message
    assert "api.auth.secret" in refused.fix
    assert "not-the-key" not in run.output


def test_secret_from_secrets_manager_is_used_and_masked(sandbox, run_checks, environments):
    secrets = boto3.client("secretsmanager", endpoint_url=sandbox.env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"],
                           region_name="us-east-1", **sandbox_aws.CREDENTIALS)
    name = "entmoot/sandbox/api-token"
    try:
        arn = secrets.describe_secret(SecretId=name)["ARN"]
    except secrets.exceptions.ResourceNotFoundException:
        arn = secrets.create_secret(Name=name, SecretString=sandbox.env["ENTMOOT_SANDBOX_API_TOKEN"])["ARN"]
    directory = environments(replace={TOKEN_REF: f'auth = {{ scheme = "bearer", secret = "{arn}" }}'})
    # The policy of the environment that references the secret: it grants GetSecretValue on that secret alone.
    sandbox.enforce_iam(iam.policies(load_environment("sandbox", directory)))
    try:
        run = run_checks("-m", "morning", "-k", "api_health or auth_enforced", "--environments-dir", str(directory), "-rA")
    finally:
        sandbox.enforce_iam(iam.policies(load_environment("sandbox", ROOT / "environments")))
    assert run.by_outcome() == {"pass": {"api.health", "api.auth-enforced"}}, run.output[-2000:]
    assert sandbox.env["ENTMOOT_SANDBOX_API_TOKEN"] not in run.output
