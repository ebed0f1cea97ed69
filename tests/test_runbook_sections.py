"""Every runbook section a check or remediation cites is a heading of the runbook (shared/runbook)."""

import re

import pytest

from entmoot_ops.remediation import REGISTRY
from entmoot_ops.runbook import SECTIONS
from conftest import ROOT

RUNBOOK = ROOT.parent / "shared" / "runbook" / "operations-runbook.md"


def _anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.skipif(not RUNBOOK.exists(), reason=f"runbook not beside this clone ({RUNBOOK})")
def test_every_section_is_a_runbook_heading():
    anchors = {_anchor(line.lstrip("#")) for line in RUNBOOK.read_text().splitlines() if line.startswith("#")}
    assert set(SECTIONS) <= anchors, set(SECTIONS) - anchors


def test_every_remediation_cites_a_known_section():
    import remediations  # noqa: F401

    assert REGISTRY
    assert all(r.section in SECTIONS for r in REGISTRY.values())
