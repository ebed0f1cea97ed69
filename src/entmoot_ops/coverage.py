"""Runbook coverage: each section and procedure of the runbook (its ``##`` and ``###`` headings), with the checks,
remediations and chaos experiments that implement it, and the headings nothing covers.

The runbook is the copy shipped with the package (``operations-runbook.md``, the specification we were given);
``--runbook`` reads another.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from entmoot_ops.check_catalogue import Entry, aligned

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{2,3})\s+(.+?)\s*#*\s*$")


def shipped_runbook() -> str:
    return resources.files("entmoot_ops").joinpath("operations-runbook.md").read_text(encoding="utf-8")


def anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^a-z0-9 -]", "", title.strip().lower()).replace(" ", "-")


@dataclass(frozen=True)
class Heading:
    level: int  # 2: a section, 3: a procedure
    title: str
    anchor: str
    parent: str | None  # the section's anchor, for a procedure


def headings(text: str) -> list[Heading]:
    """The sections and procedures, in the runbook's order; a ``#`` inside a code block is a shell comment."""
    found: list[Heading] = []
    fenced, section = False, None
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match is None:
            continue
        level, title = len(match.group(1)), match.group(2)
        if level == 2:
            section = anchor(title)
        found.append(Heading(level, title, anchor(title), section if level == 3 else None))
    return found


@dataclass(frozen=True)
class Row:
    heading: Heading
    checks: tuple[str, ...]
    remediations: tuple[str, ...]
    experiments: tuple[str, ...]
    through_procedures: int = 0  # a section: how many of its procedures are covered

    @property
    def covered(self) -> bool:
        return bool(self.checks or self.remediations or self.experiments or self.through_procedures)


def rows(text: str, checks: list[Entry], remediations: dict[str, str], experiments: dict[str, str]) -> list[Row]:
    """``remediations`` and ``experiments``: id -> the section anchor it cites."""
    def citing(cited: dict[str, str], where: str) -> tuple[str, ...]:
        return tuple(sorted(name for name, section in cited.items() if section == where))

    check_sections = {entry.id: entry.section for entry in checks}
    own = [Row(h, citing(check_sections, h.anchor), citing(remediations, h.anchor), citing(experiments, h.anchor))
           for h in headings(text)]
    covered_children: dict[str, int] = {}
    for row in own:
        if row.heading.parent and row.covered:
            covered_children[row.heading.parent] = covered_children.get(row.heading.parent, 0) + 1
    return [Row(r.heading, r.checks, r.remediations, r.experiments, covered_children.get(r.heading.anchor, 0))
            if r.heading.level == 2 else r for r in own]


def table(found: list[Row]) -> list[str]:
    """Aligned text for a terminal: one line per heading, procedures indented under their section, then what nothing
    covers."""
    rows = [("RUNBOOK HEADING", "CHECKS", "REMEDIATIONS", "CHAOS EXPERIMENTS")]
    for row in found:
        through = f"(through {row.through_procedures} procedure{'s' if row.through_procedures > 1 else ''})"
        rows.append((row.heading.title if row.heading.level == 2 else f"  {row.heading.title}",
                     ", ".join(row.checks) or (through if row.through_procedures else ""), ", ".join(row.remediations),
                     ", ".join(row.experiments)))
    return [*aligned(rows), "", summary(found)]


def summary(found: list[Row]) -> str:
    uncovered = [row.heading.title for row in found if not row.covered]
    return f"{len(found) - len(uncovered)} of {len(found)} headings covered; nothing covers: {', '.join(uncovered) or 'none'}"


def html_table(found: list[Row]) -> str:
    """The same table as HTML, as the report shows an attachment inline."""
    def cell(text: str) -> str:
        return f"<td>{html.escape(text)}</td>"

    body = "".join(
        f'<tr style="background:{"#fff" if row.covered else "#fde2e2"}">'
        + f"<td>{'' if row.heading.level == 2 else '&nbsp;&nbsp;&nbsp;&nbsp;'}{html.escape(row.heading.title)}</td>"
        + cell(", ".join(row.checks) or (f"(through {row.through_procedures})" if row.through_procedures else ""))
        + cell(", ".join(row.remediations)) + cell(", ".join(row.experiments)) + "</tr>" for row in found)
    return ("<!doctype html><meta charset=utf-8><style>body{font-family:sans-serif;font-size:12px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px;vertical-align:top}</style>"
            f"<p>{html.escape(summary(found))}</p><table><tr><th>Runbook heading</th><th>Checks</th><th>Remediations</th>"
            f"<th>Chaos experiments</th></tr>{body}</table>")


def runbook_text(path: Path | None) -> str:
    return path.read_text(encoding="utf-8") if path else shipped_runbook()
