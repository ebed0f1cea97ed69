"""A bench script's figures, also written to its section of docs/performance.md, with the date and the machine.

A script runs its ``main`` inside ``recorded(NAME)``: what it prints goes to the terminal as before, and, when the
script succeeds, to the section between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` of the page, which it
replaces. ``ENTMOOT_BENCH_PAGE=off`` makes the script only print.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import re
import shlex
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class _Tee(io.TextIOBase):
    """The terminal's stream, and a copy of what is written to it."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()


def machine() -> str:
    """The machine a figure was measured on: host name, cores, system and Python."""
    return (f"{socket.gethostname()} ({os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()})")


def section(name: str, command: str, output: str, when: datetime | None = None) -> str:
    """The section's text: when, on what, with which command, and what the script printed."""
    when = when or datetime.now(UTC)
    printed = ANSI.sub("", output).rstrip().replace("```", "'''") or "(it printed nothing)"
    return (f"Written by `{command}` on {when:%Y-%m-%d %H:%M} UTC, on {machine()}.\n\n"
            f"```text\n{printed}\n```")


def write(name: str, text: str, page: Path | None = None) -> bool:
    """Replace the section ``name`` of the page with ``text``; False when the page has no such section."""
    page = page or PAGE
    content = page.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- bench:{re.escape(name)} -->\n).*?(\n<!-- /bench:{re.escape(name)} -->)", re.S)
    if not pattern.search(content):
        return False
    page.write_text(pattern.sub(lambda match: match.group(1) + text + match.group(2), content, count=1), encoding="utf-8")
    return True


@contextlib.contextmanager
def recorded(name: str) -> Iterator[None]:
    """Run the block with what it prints copied; on success, that copy becomes the page's section ``name``."""
    if os.environ.get("ENTMOOT_BENCH_PAGE", "").lower() in ("off", "0", "no", "false") or not PAGE.is_file():
        yield
        return
    tee, stdout = _Tee(sys.stdout), sys.stdout
    sys.stdout = tee
    succeeded = False
    try:
        yield
        succeeded = True
    except SystemExit as exc:
        succeeded = exc.code in (None, 0)
        raise
    finally:
        sys.stdout = stdout
        if succeeded:
            command = "python bench/" + name + ".py" + "".join(" " + shlex.quote(arg) for arg in sys.argv[1:])
            if write(name, section(name, command, tee.copy.getvalue())):
                print(f"figures written to {PAGE.relative_to(PAGE.parent.parent)} (section bench/{name}.py)")
