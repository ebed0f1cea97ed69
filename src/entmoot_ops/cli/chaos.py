"""``entmoot-ops chaos``: the experiments an environment offers, their files, game days and the detection matrix."""

from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
from pathlib import Path

from entmoot_ops.cli.common import Refused, environment_of
from entmoot_ops.errors import OpsError
from entmoot_ops.secrets import masker


MATRIX_DEADLINE_SECONDS = 30


def chaos_list(arguments: argparse.Namespace) -> int:
    from entmoot_ops.chaos import experiment_catalogue, guard
    env = environment_of(arguments)
    for experiment in experiment_catalogue.select(Path.cwd(), [env]).values():
        refused = guard.refusal(env, experiment) if env.chaos.allowed else f"chaos.allowed is not true for {env.name}"
        detectors = ", ".join(experiment.detectors) or "(none: absorbed)"
        stops = f"; stops on alarm {', '.join(experiment.stop_alarms)}" if experiment.stop_alarms else ""
        print(f"{experiment.name:<22} {experiment.platform:<7} detected by {detectors}{stops}"
              f"{'' if refused is None else '  [refused: ' + refused + ']'}")
    return 0


def chaos_validate(arguments: argparse.Namespace) -> int:
    """Every experiment file a chaos run against the environment may select (the project's and its [chaos]
    experiments_dir), each one that is wrong in one line naming the file and the key: exit 4 if any is."""
    from entmoot_ops.chaos import files
    env = environment_of(arguments)
    valid, wrong = files.load(files.directories(Path.cwd(), [env]))
    for error in wrong.values():
        print(masker(f"entmoot-ops: {error}"), file=sys.stderr)
    print(f"{len(valid)} experiment files valid, {len(wrong)} not")
    return 4 if wrong else 0


def chaos_gameday(arguments: argparse.Namespace) -> int:
    """The experiments in order against one environment, as ``pytest checks/ -m chaos --gameday``; refused in one
    line, before anything starts, if one is unknown or not allowed there."""
    from entmoot_ops.chaos import experiment_catalogue, guard
    from entmoot_ops.config import environments_dir, load_environment

    directory = arguments.environments_dir or environments_dir()
    env = load_environment(arguments.env, directory)
    guard.refuse_unless_allowed(env, confirmed=arguments.yes)
    known = experiment_catalogue.select(Path.cwd(), [env])
    names = [n.strip() for n in arguments.experiments.split(",") if n.strip()] if arguments.experiments else list(env.chaos.experiments)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            raise Refused(f"no experiment {name}" + (f"; did you mean {close[0]}?" if close else ""),
                          fix=f"one of: {', '.join(known)} (entmoot-ops chaos list --env {env.name})")
        refused = guard.refusal(env, known[name])
        if refused:
            raise Refused(f"game day on {env.name} refused: {refused}", fix="allow it in [chaos] experiments, or leave it out")
    if not names:
        raise Refused(f"no experiment to run: [chaos] experiments of {env.name} is empty", fix="name them with --experiments a,b")
    command = [sys.executable, "-m", "pytest", "checks/", "-m", "chaos", "--env", env.name, "--environments-dir", str(directory),
               "--gameday", ",".join(names), "--gameday-pause", f"{arguments.pause:g}",
               *(["--reports-dir", str(arguments.reports_dir)] if arguments.reports_dir else []), *(["--yes"] if arguments.yes else [])]
    return subprocess.call(command)


def chaos_matrix(arguments: argparse.Namespace) -> int:
    """Every sandbox fault against the checklists; writes matrix.json, .html and junit; exit 1 on a miss or false alarm."""
    from entmoot_ops.chaos import matrix, observe
    from entmoot_ops.clients import Clients
    from entmoot_ops.config import environments_dir, load_environment
    from entmoot_ops.sandbox.faults import FAULTS
    from entmoot_ops.sandbox.handle import attach_or_start
    from entmoot_ops.sandbox.traffic import Traffic

    missing = matrix.uncovered(set(FAULTS))
    if missing:
        raise OpsError(f"sandbox faults with no row in the detection matrix: {', '.join(sorted(missing))}")
    expectations = tuple(e for e in matrix.EXPECTATIONS if not arguments.fault or e.fault in arguments.fault)
    if not expectations:
        raise OpsError(f"no fault named {', '.join(arguments.fault)} (known: {', '.join(sorted(FAULTS))})")
    handle = attach_or_start()
    try:
        env = load_environment("sandbox", arguments.environments_dir or environments_dir())
        clients = Clients(env)
        settings = env.api
        checks = observe.CheckRunner(Path("checks").resolve(), "sandbox", arguments.environments_dir,
                                     {"ENTMOOT_SANDBOX_STATE": str(handle.state_file)})
        # The checks' own session stops asking a dead endpoint; the traffic must go on through every fault.
        with Traffic(clients.api_url, dict(clients.http().headers), settings.protected_path + "/{id}"):
            # CloudWatch's delay comes first: a datapoint is not readable before it, whatever the check.
            deadline = arguments.deadline if arguments.deadline is not None else (
                MATRIX_DEADLINE_SECONDS + handle.state.get("cloudwatch_delay", [0, 0])[1])
            rows = matrix.Matrix(checks, handle, deadline_seconds=deadline).run(expectations)
    finally:
        handle.release()
    paths = matrix.write(rows, arguments.output)
    totals = matrix.summary(rows)
    for row in rows:
        verdict = "caught" if row.caught else "MISSED"
        detail = ", ".join(f"{c} {s:g} s" for c, s in row.detected.items()) or row.error or "-"
        alarms = f"  false alarms: {', '.join(row.false_alarms)}" if row.false_alarms else ""
        print(f"{verdict:<7} {row.name:<45} {detail}{alarms}")
    print(f"detection matrix: {totals['caught']} of {totals['faults']} caught, {totals['missed']} missed, {totals['false_alarms']} "
          f"false alarms, median detection {totals['median_detection_seconds']} s; {paths['html']}")
    return 0 if totals["missed"] == 0 and totals["false_alarms"] == 0 else 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    chaos = commands.add_parser("chaos", help="chaos experiments (run them with pytest checks/ -m chaos) and the detection matrix")
    chaos_commands = chaos.add_subparsers(dest="chaos_command", required=True)
    listing = chaos_commands.add_parser("list", help="the experiments, and which the environment allows")
    listing.add_argument("--env", default=os.environ.get("ENTMOOT_ENV") or "sandbox")
    listing.add_argument("--environments-dir", type=Path)
    listing.set_defaults(run=chaos_list)
    checking = chaos_commands.add_parser("validate", help="check every experiment file (a chaos run reads only those it selects)")
    checking.add_argument("--env", default=os.environ.get("ENTMOOT_ENV") or "sandbox")
    checking.add_argument("--environments-dir", type=Path)
    checking.set_defaults(run=chaos_validate)
    day = chaos_commands.add_parser("gameday", help="experiments in order, a pause between them, one report (reports/gameday/, Allure)")
    day.add_argument("--env", default=os.environ.get("ENTMOOT_ENV") or "sandbox")
    day.add_argument("--environments-dir", type=Path)
    day.add_argument("--experiments", metavar="A,B,...", help="in this order (default: the environment's [chaos] experiments)")
    day.add_argument("--pause", type=float, default=10, metavar="SECONDS",
                     help="between two experiments (default 10), beside each one's wait for its steady state")
    day.add_argument("--reports-dir", type=Path, help="default ./reports")
    day.add_argument("--yes", action="store_true", help="confirm a game day on a production environment")
    day.set_defaults(run=chaos_gameday)
    grid = chaos_commands.add_parser("matrix", help="every sandbox fault against the checklists: caught, missed, false alarms")
    grid.add_argument("--environments-dir", type=Path)
    grid.add_argument("--fault", action="append", default=[], help="only this fault (repeatable)")
    grid.add_argument("--deadline", type=float, default=None,
                      help=f"seconds a fault has to be detected (default {MATRIX_DEADLINE_SECONDS} beyond the sandbox's CloudWatch delay)")
    grid.add_argument("--output", type=Path, default=Path("reports/chaos-matrix"))
    grid.set_defaults(run=chaos_matrix)
