"""What to do when a chaos experiment fails: the fault was missed, raised false alarms, or the system did not
come back. Procedures for a person: the fix is in the checks, the alarms or the service, not in the experiment."""

from entmoot_ops.remediation import procedure

procedure("chaos.detection-gap", title="Close the detection or recovery gap an experiment found", section="handoff-procedures",
          steps=[
    "read the experiment's journal (reports/chaos/<env>/, attached to the report): timeline, observations, readings",
    "a detector that never failed: the check measures something the fault does not move; fix the check or its threshold",
    "a false alarm: a check outside the blast radius turned red; either the fault reaches further than assumed "
    "(widen the experiment's blast radius) or the check depends on what it should not",
    "not recovered: follow the failing check's own remediation; the service does not heal by itself from this fault",
    "an aborted experiment: the safeguard fired; find out why the fault hurt users more than the bound allows",
])
