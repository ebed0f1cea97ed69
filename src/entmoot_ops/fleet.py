"""A fleet's report, joined from the reports of its shards (``pytest ... --shard K/N --reports-dir DIR`` on each
runner; ``entmoot-ops report --merge DIR...`` where they meet): one junit file, one set of Allure results, one
summary.json, and the fleet's table, environment by check."""

from __future__ import annotations

import html
import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from entmoot_ops.errors import OpsError
from entmoot_ops.reports import write_result
from entmoot_ops.results import OUTCOMES, Outcome
from entmoot_ops.secrets import masker

# A fleet's cell shows the worst of its checks (a check per replica is one row): most severe first.
SEVERITY = (Outcome.ERROR, Outcome.FAIL, Outcome.FIXED, Outcome.SILENCED, Outcome.SKIP, Outcome.PASS)
FAILING = frozenset({Outcome.ERROR, Outcome.FAIL, Outcome.FIXED})
SHARED_FILES = ("categories.json", "executor.json")


@dataclass
class Fleet:
    checks: list[dict]  # summary.json's checks of every shard
    environments: list[str]
    table: dict[str, dict[str, str]]  # check id -> environment -> outcome
    missing: list[str]  # the shards ("K/N") of the run that no directory given holds: their checks were not judged

    @property
    def failing(self) -> bool:
        """Not verified: a check of the fleet did not pass, or a shard is missing."""
        return bool(self.missing) or any(check["outcome"] in FAILING for check in self.checks)

    def lines(self) -> list[str]:
        """The fleet's table as text: a row per check, a column per environment."""
        width = max((len(check_id) for check_id in self.table), default=5)
        columns = [max(len(name), 5) for name in self.environments]
        lines = ["check".ljust(width) + "  " + "  ".join(name.ljust(w) for name, w in zip(self.environments, columns, strict=True))]
        for check_id in sorted(self.table):
            cells = [self.table[check_id].get(name, "-").upper().ljust(w) for name, w in zip(self.environments, columns, strict=True)]
            lines.append(check_id.ljust(width) + "  " + "  ".join(cells))
        return [line.rstrip() for line in lines]

    def markdown(self) -> str:
        rows = ["| check | " + " | ".join(self.environments) + " |", "|---" * (len(self.environments) + 1) + "|"]
        rows += ["| " + check_id + " | " + " | ".join(self.table[check_id].get(name, "-").upper() for name in self.environments) + " |"
                 for check_id in sorted(self.table)]
        return "\n".join(rows) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(name)}</th>" for name in self.environments)
        body = "".join(f"<tr><td>{html.escape(check_id)}</td>"
                       + "".join(f"<td>{self.table[check_id].get(name, '-').upper()}</td>" for name in self.environments) + "</tr>"
                       for check_id in sorted(self.table))
        return f"<table><tr><th>check</th>{head}</tr>{body}</table>"


def merge(shards: list[Path], into: Path) -> Fleet:
    """Join the shards' reports into ``into``; an OpsError in one line for a directory that holds no run's reports,
    for shards of different runs, or for shards that ran the same check. A shard of the run that is not given is
    listed as missing (``Fleet.missing``)."""
    summaries = [_summary(shard) for shard in shards]
    missing = _missing(shards, summaries)
    into.mkdir(parents=True, exist_ok=True)
    _merge_junit(shards, into / "junit.xml")
    _merge_allure(shards, into / "allure-results")
    checks = sorted((check for summary in summaries for check in summary["checks"]), key=lambda c: (c["environment"], c["id"]))
    # The run's environments, those of a missing shard included (an older summary names only what it judged).
    environments = sorted(summaries[0].get("run", {}).get("environments") or {check["environment"] for check in checks})
    table: dict[str, dict[str, str]] = {}
    for check in checks:
        cell = table.setdefault(check["id"], {})
        shown = cell.get(check["environment"])
        cell[check["environment"]] = check["outcome"] if shown is None else min(shown, check["outcome"], key=_severity)
    fleet = Fleet(checks, environments, table, missing)
    merged = {"finished": datetime.now(UTC).isoformat(timespec="seconds"), "marker": summaries[0]["marker"],
              "wall_seconds": max(summary["wall_seconds"] for summary in summaries),
              "run": {key: value for key, value in summaries[0].get("run", {}).items() if key != "shard"},
              "shards": [{"reports": str(shard), "shard": summary.get("run", {}).get("shard"), "wall_seconds": summary["wall_seconds"],
                          "counts": summary["counts"]} for shard, summary in zip(shards, summaries, strict=True)],
              "missing": missing,
              "counts": {outcome: sum(1 for check in checks if check["outcome"] == outcome) for outcome in OUTCOMES},
              "environments": environments, "table": table, "checks": checks}
    (into / "summary.json").write_text(masker.dumps(merged, indent=2))
    (into / "fleet.md").write_text(fleet.markdown())
    write_result(into / "allure-results", "Fleet: environment by check", "entmoot-ops.fleet", "unknown",
                 f"{len(environments)} environments, {len(checks)} checks",
                 [("fleet", fleet.html().encode(), "text/html", "html")], suite="fleet")
    return fleet


def _missing(shards: list[Path], summaries: list[dict]) -> list[str]:
    """The shards of the run that are not here. The directories must hold shards of one run: the same selection and
    environments, the same number of shards, each shard once; an OpsError in one line otherwise."""
    runs = [{key: value for key, value in summary.get("run", {}).items() if key != "shard"} for summary in summaries]
    if any(run != runs[0] for run in runs):
        different = next(shard for shard, run in zip(shards, runs, strict=True) if run != runs[0])
        raise OpsError(f"{different} ran another selection than {shards[0]} ({_describe(runs[0])} against "
                       f"{_describe(runs[shards.index(different)])})",
                       fix="merge the shards of one run: the same -m, --check and --env on each, --shard K/N apart")
    parts = [summary.get("run", {}).get("shard") for summary in summaries]
    if not all(parts):
        unsharded = shards[parts.index(None)]
        if len(shards) == 1:
            return []  # one run of the whole selection: its own report, with the fleet's table
        raise OpsError(f"{unsharded} is not a shard (run without --shard K/N): nothing to merge it with",
                       fix="merge the reports of the runs of one selection with --shard 1/N to N/N")
    counts = {part.split("/")[1] for part in parts}
    if len(counts) > 1:
        raise OpsError(f"the shards were cut in different numbers of parts ({', '.join(sorted(parts))})",
                       fix="merge the shards of one run: the same N in each --shard K/N")
    for part in parts:
        if parts.count(part) > 1:
            twice = [str(shard) for shard, found in zip(shards, parts, strict=True) if found == part]
            raise OpsError(f"shard {part} is given twice ({', '.join(twice)})", fix="give each shard's reports once")
    count = int(counts.pop())
    return [f"{k}/{count}" for k in range(1, count + 1) if f"{k}/{count}" not in parts]


def _describe(run: dict) -> str:
    return f"-m {run.get('marker', '?')} on {', '.join(run.get('environments', [])) or '?'}"


def _severity(outcome: str) -> int:
    return SEVERITY.index(Outcome(outcome)) if outcome in OUTCOMES else 0


def _summary(shard: Path) -> dict:
    path = shard / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        summary["checks"], summary["marker"], summary["wall_seconds"], summary["counts"]  # noqa: B018 - its shape
    except FileNotFoundError:
        raise OpsError(f"{shard}: no summary.json: not the reports of a run of checks",
                          fix="name each shard's --reports-dir") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise OpsError(f"{path}: not a summary the suite wrote ({type(exc).__name__}: {exc})") from None
    return summary


def _merge_junit(shards: list[Path], path: Path) -> None:
    root = ET.Element("testsuites", name="entmoot fleet")
    seen: dict[str, Path] = {}
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    elapsed = 0.0
    for shard in shards:
        try:
            tree = ET.parse(shard / "junit.xml")
        except (FileNotFoundError, ET.ParseError) as exc:
            raise OpsError(f"{shard / 'junit.xml'}: {type(exc).__name__}: {exc}", fix="name each shard's --reports-dir") from None
        suites = [tree.getroot()] if tree.getroot().tag == "testsuite" else list(tree.getroot())
        for suite in suites:
            for case in suite.iter("testcase"):
                name = f"{case.get('classname')}::{case.get('name')}"
                if name in seen:
                    raise OpsError(f"{shard} and {seen[name]} both ran {name}: the shards overlap",
                                      fix="run every shard with the same selection, --shard 1/N to N/N")
                seen[name] = shard
            for key in totals:
                totals[key] += int(suite.get(key, 0))
            elapsed += float(suite.get("time", 0))
            root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{elapsed:.3f}")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def _merge_allure(shards: list[Path], results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    properties: dict[str, None] = {}
    for shard in shards:
        source = shard / "allure-results"
        for path in source.iterdir() if source.is_dir() else ():
            if path.name == "environment.properties":
                properties.update(dict.fromkeys(path.read_text(encoding="utf-8").splitlines()))
            elif path.name not in SHARED_FILES or not (results / path.name).exists():
                shutil.copy2(path, results / path.name)  # results and attachments carry unique names
    (results / "environment.properties").write_text("".join(f"{line}\n" for line in properties if line))
