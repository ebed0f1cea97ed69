"""The check catalogue: every check the suite holds, with its metadata, read from the check modules themselves.

The modules are imported, not collected: a listing starts no sandbox and resolves no environment.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from entmoot_ops.check import CHECKLISTS


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    markers: tuple[str, ...]
    severity: str
    section: str
    remediation: str
    depends: tuple[str, ...]
    source: str  # checks/test_errors.py::test_error_rate


def _module(path: Path) -> ModuleType:
    name = f"entmoot_checks_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def checks(checks_dir: Path) -> list[Entry]:
    """Every check in ``checks_dir``, ordered by id."""
    found = []
    for path in sorted(checks_dir.glob("test_*.py")):
        module = _module(path)
        module_marks = list(getattr(module, "pytestmark", []))
        for name, function in vars(module).items():
            if not name.startswith("test_") or not callable(function):
                continue
            marks = [*module_marks, *getattr(function, "pytestmark", [])]
            declared = next((mark.kwargs for mark in marks if mark.name == "check"), None)
            if declared is None:
                continue
            found.append(Entry(
                id=declared["id"], title=declared["title"], severity=declared["severity"], section=declared["section"],
                remediation=declared["remediation"], depends=tuple(declared["depends"]),
                markers=tuple(marker for marker in CHECKLISTS if any(mark.name == marker for mark in marks)),
                source=f"{checks_dir.name}/{path.name}::{name}"))
    return sorted(found, key=lambda entry: entry.id)


def table(entries: list[Entry]) -> list[str]:
    """The catalogue as aligned text lines, for a terminal."""
    rows = [("ID", "SEVERITY", "MARKERS", "RUNBOOK SECTION", "REMEDIATION", "TITLE")]
    return aligned(rows + [(e.id, e.severity, ",".join(e.markers), e.section, e.remediation, e.title) for e in entries])


def aligned(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows of text cells as aligned lines for a terminal (the last column as long as it is)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip() for row in rows]
