"""Known secret values never appear in the terminal, junit, Allure results or the audit log."""

from __future__ import annotations

from entmoot_ops.secrets import MASK, Masker

from conftest import settle


def test_masker_masks_values_and_passwords_inside_connection_strings():
    masker = Masker()
    masker.add_connection_string("host=db port=5432 user=app password=s3cr3t-pw dbname=x")
    masker.add_connection_string("rediss://:tok3n-value@cache:6379/0")
    assert masker("failed for password=s3cr3t-pw") == f"failed for password={MASK}"
    assert "tok3n-value" not in masker("redis said tok3n-value")
    assert masker("abc") == "abc"


def test_no_secret_reaches_any_output(sandbox, run_checks):
    secrets = sandbox.state["secrets"]
    assert len(secrets) >= 6
    # Failures, evidence, a remediation (audit log) and verbose tracebacks: everything that writes.
    with sandbox.fault("api_degraded"), sandbox.fault("rds_low_storage", free_ratio=0.05), sandbox.fault("slot_inactive"):
        settle(sandbox)
        run = run_checks("-m", "morning", "--remediate", "-rA", "-vv")
    assert run.outcome("rds.free-storage") == "fixed" and run.outcome("api.health") == "fail"
    written = [run.output] + [p.read_text(errors="replace") for p in run.reports.rglob("*") if p.is_file()]
    assert any(p.name == "audit.jsonl" for p in run.reports.rglob("*"))
    assert len(list((run.reports / "allure-results").glob("*-attachment*"))) > 10
    for secret in secrets:
        for text in written:
            assert secret not in text
