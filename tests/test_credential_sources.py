"""Credentials come from where the environment says: the instance metadata service is asked only by an environment
that names `credentials = "instance"`, and a role named by `role_arn` is assumed with the source's credentials.

The metadata service is a loopback listener here (AWS_EC2_METADATA_SERVICE_ENDPOINT): it counts who knocks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment

ROOT = Path(__file__).resolve().parent.parent


class Listener:
    """A TCP listener on loopback that accepts and counts connections, and answers nothing."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()


@pytest.fixture
def metadata_service():
    listener = Listener()
    yield listener
    listener.socket.close()


def _without_credentials(tmp_path: Path, metadata_service: Listener) -> dict[str, str]:
    """A laptop or a CI runner with no AWS credentials at all, whose instance metadata service is the listener."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ENTMOOT_"))}
    return environment | {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"),
                          "AWS_EC2_METADATA_SERVICE_ENDPOINT": metadata_service.url}


def _staging(tmp_path: Path, extra: str = "") -> Path:
    directory = tmp_path / "environments"
    directory.mkdir(exist_ok=True)
    text = (ROOT / "environments" / "staging.toml").read_text().replace('region = "us-east-1"', 'region = "us-east-1"' + extra, 1)
    (directory / "staging.toml").write_text(text)
    return directory


@pytest.mark.parametrize("command", [
    ["-m", "entmoot_ops.cli", "scale", "--env", "prod", "--to", "8", "--dry-run"],
    ["-m", "pytest", "checks/", "-m", "morning", "--env", "staging", "--environments-dir", "{staging}"],
], ids=["scale-dry-run", "morning-on-staging"])
def test_no_credentials_never_asks_the_instance_metadata_service(command, tmp_path, metadata_service):
    staging = _staging(tmp_path)
    result = subprocess.run([sys.executable, *(str(staging) if word == "{staging}" else word for word in command)], cwd=ROOT,
                            env=_without_credentials(tmp_path, metadata_service), capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert metadata_service.connections == 0
    assert result.returncode != 0 and "Traceback" not in output, output[-3000:]
    assert "aws.credentials: none found" in output and 'credentials = "instance"' in output, output[-3000:]


def test_an_environment_on_an_instance_asks_it(tmp_path, metadata_service):
    """The same run with the environment naming its instance's role: the listener is asked (so the test above could
    see it), and nothing answers, which is one line."""
    staging = _staging(tmp_path, '\ncredentials = "instance"')
    result = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "morning", "--env", "staging",
                             "--environments-dir", str(staging)], cwd=ROOT, env=_without_credentials(tmp_path, metadata_service),
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert metadata_service.connections > 0, output[-3000:]
    assert "aws.credentials: none found from the instance's or the ECS task's role" in output and "Traceback" not in output


@pytest.mark.parametrize(("settings", "said"), [
    ('credentials = "keys"', 'credentials = "keys" needs access_key_id and secret_access_key'),
    ('credentials = "profile"', 'credentials = "profile" needs profile'),
    ('access_key_id = "env:K"', "access_key_id and secret_access_key go together"),
    ('credentials = "instance"\naccess_key_id = "env:K"\nsecret_access_key = "env:S"', 'credentials = "instance" would not use them'),
    ('credentials = "ec2"', "credentials"),
])
def test_a_credential_source_that_cannot_be_is_refused(settings, said, tmp_path):
    from entmoot_ops.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        load_environment("staging", _staging(tmp_path, "\n" + settings))
    assert said in str(refused.value)


@pytest.fixture
def stock_sts():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    yield f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    server.stop()


def test_a_role_named_by_role_arn_is_assumed_with_the_source_s_credentials(tmp_path, stock_sts, monkeypatch):
    import boto3

    admin = boto3.client("iam", endpoint_url=stock_sts, region_name="us-east-1", aws_access_key_id="testing",
                         aws_secret_access_key="testing")
    role = admin.create_role(RoleName="entmoot-readonly", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    monkeypatch.setenv("K", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("S", "not-a-real-secret")
    environment = load_environment("staging", _staging(tmp_path, f'\nendpoint_url = "{stock_sts}"\naccess_key_id = "env:K"\n'
                                                                 f'secret_access_key = "env:S"\nrole_arn = "{role}"'))
    clients = Clients(environment)
    assert clients.aws_credentials() == "assume-role"
    caller = clients.aws("sts").get_caller_identity()["Arn"]
    assert caller.startswith(role.replace(":iam::", ":sts::").replace(":role/", ":assumed-role/") + "/entmoot-ops"), caller
