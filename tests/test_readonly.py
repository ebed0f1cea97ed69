"""Check mode cannot write: AWS, PostgreSQL and Redis refuse before anything changes."""

from __future__ import annotations

import psycopg
import pytest

from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment
from entmoot_ops.errors import ReadOnlyViolation
from conftest import ROOT


@pytest.fixture
def clients(sandbox, monkeypatch):
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    clients = Clients(load_environment("sandbox", ROOT / "environments"))
    yield clients
    clients.close()


def test_aws_write_is_refused_before_the_call(clients):
    ecs = clients.aws("ecs")
    before = ecs.describe_services(cluster="entmoot-sandbox", services=["entmoot-api"])["services"][0]["desiredCount"]
    with pytest.raises(ReadOnlyViolation, match="check mode refused AWS ecs:UpdateService"):
        ecs.update_service(cluster="entmoot-sandbox", service="entmoot-api", desiredCount=before + 5)
    with pytest.raises(ReadOnlyViolation, match="rds:ModifyDBInstance"):
        clients.aws("rds").modify_db_instance(DBInstanceIdentifier="entmoot-sandbox", AllocatedStorage=999)
    assert ecs.describe_services(cluster="entmoot-sandbox", services=["entmoot-api"])["services"][0]["desiredCount"] == before


def test_postgres_session_is_read_only_with_timeouts(clients):
    with clients.postgres(clients.env.postgres.primary_dsn, name="primary") as session:
        settings = dict(session.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('default_transaction_read_only', 'statement_timeout', 'lock_timeout')").fetchall())
        assert settings == {"default_transaction_read_only": "on", "statement_timeout": "2000", "lock_timeout": "2000"}
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            session.execute("DELETE FROM optimization_jobs")


def test_redis_write_is_refused(clients):
    with pytest.raises(ReadOnlyViolation, match="check mode refused Redis SET"):
        clients.redis().set("entmoot:test", "x")
    with pytest.raises(ReadOnlyViolation, match="FLUSHALL"):
        clients.redis().flushall()
    assert clients.redis().ping()


def test_remediation_clients_may_write(clients):
    writable = Clients(clients.env, writable=True)
    try:
        assert writable.redis().set("entmoot:test:writable", "1", ex=5)
    finally:
        writable.close()
