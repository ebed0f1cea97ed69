"""``entmoot-ops checks``, ``coverage`` and ``report``: the check catalogue, the runbook's coverage, the Allure report."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
from pathlib import Path

from entmoot_ops.cli.common import project_checks
from entmoot_ops.errors import ConfigError


def checks_listing(arguments: argparse.Namespace) -> int:
    """Every check: id, title, markers, severity, runbook section and remediation."""
    from entmoot_ops import check_catalogue
    from entmoot_ops.check import CHECKLISTS

    if arguments.marker and arguments.marker not in CHECKLISTS:
        close = difflib.get_close_matches(arguments.marker, CHECKLISTS, n=1)
        raise ConfigError(f"no checklist named {arguments.marker}" + (f"; did you mean {close[0]}?" if close else ""),
                          fix=f"one of: {', '.join(CHECKLISTS)}")
    entries = [e for e in project_checks(arguments.checks_dir) if not arguments.marker or arguments.marker in e.markers]
    if arguments.json:
        print(json.dumps([dataclasses.asdict(e) for e in entries], indent=2))
    else:
        print("\n".join(check_catalogue.table(entries)))
    return 0


def _coverage(checks_dir: Path, runbook: Path | None) -> list:
    from entmoot_ops import coverage
    from entmoot_ops.chaos import experiment_catalogue
    from entmoot_ops.remediation import REGISTRY

    entries = project_checks(checks_dir)
    try:
        import remediations  # noqa: F401 - registers the project's remediations
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the coverage reads the remediations of the project: {exc}",
                          fix="run it from the project's directory (the one holding checks/ and remediations/)") from None
    try:
        text = coverage.runbook_text(runbook)
    except OSError as exc:
        raise ConfigError(f"cannot read the runbook {runbook}: {exc.strerror}") from None
    return coverage.rows(text, entries, {r.id: r.section for r in REGISTRY.values()},
                         {e.name: e.section for e in experiment_catalogue.experiments(checks_dir.resolve().parent).values()})


def coverage_table(arguments: argparse.Namespace) -> int:
    """Each runbook section and procedure with what covers it, and what nothing covers."""
    from entmoot_ops import coverage

    rows = _coverage(arguments.checks_dir, arguments.runbook)
    if arguments.json:
        print(json.dumps([{"heading": r.heading.title, "anchor": r.heading.anchor, "level": r.heading.level,
                           "checks": r.checks, "remediations": r.remediations, "experiments": r.experiments,
                           "covered": r.covered} for r in rows], indent=2))
    else:
        print("\n".join(coverage.table(rows)))
    return 0


def report(arguments: argparse.Namespace) -> int:
    from entmoot_ops import coverage
    from entmoot_ops.reports import generate_html, write_coverage_result

    if arguments.merge:
        return merge(arguments)

    if arguments.results.is_dir() and any(arguments.results.glob("*-result.json")):
        rows = _coverage(arguments.checks_dir, None)
        write_coverage_result(arguments.results, coverage.html_table(rows), coverage.summary(rows))
    index = generate_html(arguments.results, arguments.output, arguments.tools, arguments.history)
    print(f"Allure report: {index.resolve()} (one file; open it in a browser, no network needed)")
    return 0


def merge(arguments: argparse.Namespace) -> int:
    """The shards' reports joined into one, the fleet's table printed; exit 1 when a check of the fleet did not pass,
    as the run of the whole fleet would, or when a shard is missing."""
    from entmoot_ops import fleet
    from entmoot_ops.results import OUTCOMES

    joined = fleet.merge(arguments.merge, arguments.into)
    print("\n".join(joined.lines()))
    counts = {outcome: sum(1 for check in joined.checks if check["outcome"] == outcome) for outcome in OUTCOMES}
    print(f"\nfleet: {len(joined.environments)} environments, {len(joined.checks)} checks: "
          + ", ".join(f"{count} {outcome}" for outcome, count in counts.items() if count))
    if joined.missing:  # a shard whose runner left no reports: its checks were not judged, the fleet is not verified
        print(f"missing: shard {', '.join(joined.missing)}: no reports given for it; its checks were not judged")
    print(f"merged into {arguments.into}: junit.xml, summary.json, fleet.md, allure-results/")
    print(f"the Allure report of the fleet: entmoot-ops report --results {arguments.into / 'allure-results'} "
          f"--output {arguments.into / 'allure-report'}")
    return 1 if joined.failing else 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    listing = commands.add_parser("checks", help="the check catalogue: id, title, markers, severity, runbook section, remediation")
    listing.add_argument("--marker", help="only the checks of this checklist (morning, evening, deploy, ...)")
    listing.add_argument("--json", action="store_true", help="as JSON, for other tools")
    listing.add_argument("--checks-dir", type=Path, default=Path("checks"))
    listing.set_defaults(run=checks_listing)
    covered = commands.add_parser("coverage", help="each runbook section and procedure, with the checks, remediations and experiments that cover it")
    covered.add_argument("--runbook", type=Path, help="the runbook (default: the one shipped with entmoot-ops)")
    covered.add_argument("--json", action="store_true", help="as JSON, for other tools")
    covered.add_argument("--checks-dir", type=Path, default=Path("checks"))
    covered.set_defaults(run=coverage_table)
    html = commands.add_parser("report", help="generate the Allure HTML report from reports/allure-results")
    html.add_argument("--results", type=Path, default=Path("reports/allure-results"))
    html.add_argument("--output", type=Path, default=Path("reports/allure-report"))
    html.add_argument("--tools", type=Path, default=Path("reports/.tools"), help="where allure-commandline is installed")
    html.add_argument("--history", type=Path, default=Path("reports/allure-history"),
                      help="the trend across runs: kept here between reports")
    html.add_argument("--checks-dir", type=Path, default=Path("checks"), help="for the runbook coverage table in the report")
    html.add_argument("--merge", type=Path, nargs="+", metavar="DIR",
                      help="join the reports of a fleet's shards (each shard's --reports-dir of `pytest ... --shard K/N`) "
                           "into --into: junit, Allure results, summary.json and the fleet's table; exit 1 when a check failed")
    html.add_argument("--into", type=Path, default=Path("reports/fleet"), help="where --merge writes the fleet's reports")
    html.set_defaults(run=report)
