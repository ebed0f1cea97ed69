"""What a check declares it depends on is what its measurements reach: the detection matrix and chaos experiments
take their blast radius from these declarations, so a stale one would hide a false alarm or invent one."""

from __future__ import annotations

from conftest import ROOT
from entmoot_ops.check import CHECKLISTS

READ_ONLY = [name for name in CHECKLISTS if name not in ("load", "chaos")]


def test_every_check_reaches_only_what_it_declares(run_checks):
    run = run_checks("-m", " or ".join(READ_ONLY), "--expected-version", "1.4.2", "--evidence", "all")
    assert run.results, run.output[-3000:]
    undeclared = {r.check_id: sorted(set(r.touched) - set(r.depends)) for r in run.results if set(r.touched) - set(r.depends)}
    assert undeclared == {}, "declare these in the check's depends=(...): " + repr(undeclared)
    untouched = [r.check_id for r in run.results if r.outcome == "pass" and not r.touched]
    assert untouched == [], "a passing check that measured nothing: " + repr(untouched)
    assert len({r.check_id for r in run.results}) == sum(
        (ROOT / "checks" / name).read_text().count("@check(id=\"") for name in
        [p.name for p in (ROOT / "checks").glob("test_*.py") if p.name not in ("test_chaos.py", "test_load.py")])
