"""Checks written by a test, run by pytest in a directory of their own, against environments whose endpoints are closed
loopback ports: nothing they run reaches a dependency, and nothing leaves the machine. The remediations they name
are the project's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT

CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there
HEADER = '''
    import threading
    import pytest
    from entmoot_ops.check import check, expect

    COMMON = dict(title="t", section="quick-reference", severity="high", remediation="api.investigate-health", depends=("api",))
'''


def environment_file(directory: Path, name: str, extra: str = "") -> None:
    """The sandbox's environment file as a real environment's, named ``name``, its endpoints closed ports."""
    directory.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "environments" / "sandbox.toml").read_text().replace('kind = "sandbox"', 'kind = "aws"')
    text = text.replace("env:ENTMOOT_SANDBOX_", "env:CLOSED_")
    directory.joinpath(f"{name}.toml").write_text(text + extra)


def run_custom_checks(tmp_path: Path, body: str, *args: str) -> subprocess.CompletedProcess:
    """``pytest checks/ ARGS`` where checks/test_meeting.py holds ``body`` (after HEADER) and environments/ the
    files environment_file wrote."""
    checks = tmp_path / "checks"
    checks.mkdir(exist_ok=True)
    if not (tmp_path / "remediations").exists():  # the remediations the checks name, registered as the project does
        (tmp_path / "remediations").symlink_to(ROOT / "remediations")
        (tmp_path / "conftest.py").write_text((ROOT / "conftest.py").read_text())
    (checks / "test_meeting.py").write_text(textwrap.dedent(HEADER) + textwrap.dedent(body))
    environments = tmp_path / "environments"
    environments.mkdir(exist_ok=True)
    variables = {name: value for name, value in os.environ.items() if not name.startswith("ENTMOOT_SANDBOX_")}
    for key in ("AWS_ENDPOINT_URL", "API_URL", "HTTPS_URL"):
        variables[f"CLOSED_{key}"] = f"http://{CLOSED}"
    for key in ("PG_PRIMARY_DSN", "PG_ADMIN_DSN", "PG_REPLICA1_DSN"):
        variables[f"CLOSED_{key}"] = f"host=127.0.0.1 port=9 dbname=entmoot user=monitor password=not-used-{key.lower()}"
    variables.update(CLOSED_REDIS_URL=f"redis://{CLOSED}/0", CLOSED_AWS_ACCESS_KEY_ID="AKIACLOSEDPORT000001",
                     CLOSED_AWS_SECRET_ACCESS_KEY="closed-port-secret", CLOSED_API_TOKEN="closed-port-token",
                     CLOSED_REDIS_PASSWORD="closed-port-password", CLOSED_SSH_CONFIG="/dev/null", CLOSED_CA_FILE="/dev/null",
                     CLOSED_PG_CONFIG_FILE="/dev/null", CLOSED_PG_HBA_FILE="/dev/null", CLOSED_REDIS_CONFIG_FILE="/dev/null",
                     AWS_EC2_METADATA_DISABLED="true")
    return subprocess.run([sys.executable, "-m", "pytest", str(checks), "--rootdir", str(tmp_path), "-c", str(ROOT / "pyproject.toml"),
                           "-q", "--environments-dir", str(environments), "--reports-dir",
                           str(tmp_path / "reports"), *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=variables)


def meeting(ids: list[str], parties: int) -> str:
    """Checks (their bodies, after HEADER) that each wait at one threading.Barrier of ``parties``: only checks that
    measure at the same time pass it (one measured after another waits out the barrier's timeout and errs)."""
    body = f"MEETING = threading.Barrier({parties}, timeout=30)\n"
    for index, check_id in enumerate(ids):
        body += (f"\n@pytest.mark.morning\n@check(id={check_id!r}, **COMMON)\ndef test_meeting_{index}(env):\n"
                 f"    expect('checks measuring with this one', MEETING.wait() >= 0, '==', True)\n")
    return body
