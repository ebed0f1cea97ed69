"""Chaos experiments (``pytest checks/ -m chaos``): each experiment file (the project's experiments/ and the
environment's [chaos] experiments_dir, entmoot_ops.chaos.files) is a check.

It passes when the steady state held before, every expected detector failed within the detection deadline,
nothing outside the blast radius turned red, no safeguard fired, and the steady state came back within the
recovery deadline. Its journal (timeline, observations, detection and recovery times) is attached. The
``chaos_runner`` fixture that runs it is the plugin's (entmoot_ops.pytest_plugin.load_and_chaos), beside the refusal of an
experiment not allowed.
"""

import math
from pathlib import Path

import pytest

from entmoot_ops.chaos import experiment_catalogue, guard
from entmoot_ops.chaos.experiment import Experiment
from entmoot_ops import charts
from entmoot_ops.check import attach_chart, check, evidence, expect, record
from entmoot_ops.errors import OpsError


def _judge(env, run, experiment: Experiment, gameday) -> None:
    refused = guard.refusal(env.config, experiment)
    if refused:
        pytest.skip(f"refused: {refused}")
    preflight = env.clients.preflight
    if preflight is not None and not preflight.ok:  # its observations could only say so again, for minutes
        raise OpsError(f"not run: the preflight of {env.name} failed (above)", fix="correct what the preflight lists, then re-run")
    if gameday is not None:
        gameday.before(experiment.name)
    # In a game day, an experiment waits for the steady state the one before it disturbed; the first has none to wait for.
    journal = run(experiment, settle=bool(gameday and gameday.journals))
    if gameday is not None:
        gameday.record(journal.record())
    evidence("chaos journal", journal.record())
    attach_chart(f"timeline of {experiment.name}", lambda: charts.timeline(f"chaos experiment {experiment.name} on {env.name}",
                                                                          charts.chaos_events(journal.record())))
    settings = env.config.chaos
    if journal.status == "not-run":
        raise OpsError(f"not run: {journal.reason}", fix="restore the steady state first: run the failing checks alone")
    if journal.status == "rollback-failed":
        raise OpsError(journal.reason, fix="repair by hand what is left broken; the audit log lists every action")
    if journal.status == "error":
        raise OpsError(f"the experiment failed: {journal.reason} (its rollbacks ran)", fix="read its journal in reports/chaos/")
    expect("safeguards and time limit", journal.reason if journal.status == "aborted" else "held", "==", "held")
    for check_id, seconds in journal.detection_seconds.items():
        if seconds is not None:
            record("chaos_detection_seconds", seconds, experiment=experiment.name, detector=check_id)
        expect(f"seconds until {check_id} detected the fault (inf: never)", math.inf if seconds is None else seconds, "<=",
               experiment.detection_seconds(settings), unit="s")
    expect(f"checks outside the blast radius that turned red ({', '.join(journal.false_alarms) or 'none'})",
           len(journal.false_alarms), "==", 0)
    if journal.recovery_seconds is not None:
        record("chaos_recovery_seconds", journal.recovery_seconds, experiment=experiment.name)
    expect(f"seconds until the steady state held again (inf: never{'; ' + journal.not_recovered if journal.not_recovered else ''})",
           math.inf if journal.recovery_seconds is None else journal.recovery_seconds, "<=", experiment.recovery_seconds(settings),
           unit="s")


def _experiment_check(experiment: Experiment):
    @pytest.mark.chaos
    @check(id=f"chaos.{experiment.name}", title=experiment.title, section=experiment.section, severity="high",
           remediation=experiment.remediation,
           depends=("api", "traffic", "primary", "replica", "redis", "aws"))
    def test(env, chaos_runner, gameday):
        _judge(env, chaos_runner, experiment, gameday)

    test.__name__ = f"test_{experiment.name.replace('-', '_')}"
    return test


def _wrong_file_check(name: str, wrong: OpsError):
    """A file that is not a valid experiment is still selected as one (-m chaos, --check): the plugin refuses a run
    that selects it, in one line, before anything starts (so its metadata is never judged); a run that does not
    (a morning) is not stopped by it."""
    @pytest.mark.chaos
    @check(id=f"chaos.{name}", title=f"experiment file {name} (not valid)", section="quick-reference",
           severity="high", remediation="chaos.detection-gap", depends=("api",))
    def test(env):
        raise wrong

    test.__name__ = f"test_{name.replace('-', '_')}"
    return test


_PROJECT = Path(__file__).resolve().parent.parent
for _experiment in experiment_catalogue.experiments(_PROJECT).values():
    globals()[f"test_{_experiment.name.replace('-', '_')}"] = _experiment_check(_experiment)
for _name, _wrong in experiment_catalogue.broken(_PROJECT).items():
    globals()[f"test_{_name.replace('-', '_')}"] = _wrong_file_check(_name, _wrong)
