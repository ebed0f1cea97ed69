"""Every runbook section a check or remediation cites is a heading of the runbook (shared/runbook)."""

import pytest

from entmoot_ops import coverage
from entmoot_ops.remediation import REGISTRY
from entmoot_ops.runbook import SECTIONS
from conftest import ROOT

GIVEN = ROOT.parent / "shared" / "runbook" / "operations-runbook.md"


def test_every_section_is_a_runbook_heading():
    anchors = {heading.anchor for heading in coverage.headings(coverage.shipped_runbook())}
    assert set(SECTIONS) <= anchors, set(SECTIONS) - anchors


@pytest.mark.skipif(not GIVEN.exists(), reason=f"the runbook we were given is not beside this clone ({GIVEN})")
def test_the_shipped_runbook_is_the_one_we_were_given():
    assert coverage.shipped_runbook() == GIVEN.read_text()


def test_every_remediation_cites_a_known_section():
    import remediations  # noqa: F401

    assert REGISTRY
    assert all(r.section in SECTIONS for r in REGISTRY.values())
