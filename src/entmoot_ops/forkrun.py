"""pytest over ``checks/`` in a fresh process that does not pay the imports again.

A check run as a user runs it costs an interpreter and the suite's imports (botocore, psycopg, pydantic, requests,
redis, allure, the probes: about half a second of CPU) before its first check. An experiment observes its
checks every second, and the project's tests run the suite hundreds of times. Each such run is forked from a
server process that imported those once (multiprocessing's forkserver): it starts with them loaded, with
botocore's models parsed (entmoot_ops.forkrun_models), and with no other state, and runs ``pytest.main`` as
``python -m pytest`` would, in its own directory and environment.

The suite's plugin is preloaded too, with what it imports (xdist's scheduler, testinfra): pytest rewrites the
asserts of a plugin's modules as it imports them, and warns about one imported before it. The suite's package says
it needs none (PYTEST_DONT_REWRITE); for the others the forked run ignores that warning, which says only that
their asserts keep Python's plain messages.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The checks' imports too: the probes (by file, so that a new one is never left out), what the remediations and the
# triage import with them, and allure's plugin. A forked run of one check took 0.40 s before, 0.28 s after.
PROBES = sorted(f"entmoot_ops.probes.{path.stem}" for path in (Path(__file__).parent / "probes").glob("*.py") if path.stem != "__init__")
PRELOAD = ["pytest", "_pytest.junitxml", "botocore.session", "botocore.config", "botocore.loaders", "psycopg", "pydantic",
           "requests", "redis", "allure_commons", "allure_pytest.plugin", "prometheus_client", "execnet", "cryptography.x509",
           "entmoot_ops.pytest_plugin", "entmoot_ops.forkrun_models", *PROBES, "entmoot_ops.triage", "entmoot_ops.procedures"]

_context: multiprocessing.context.ForkServerContext | None = None


def _server() -> multiprocessing.context.ForkServerContext:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _pytest_main(args: list[str], env: dict[str, str], cwd: str, output: str) -> None:
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, cwd)  # as `python -m pytest` puts the working directory first
    sys.argv = [sys.executable, "-m", "pytest", *args]
    written = os.open(output, os.O_WRONLY | os.O_APPEND)
    os.dup2(written, 1)
    os.dup2(written, 2)
    import pytest

    code = pytest.main(["-W", "ignore::pytest.PytestAssertRewriteWarning", *args])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))  # no atexit of the server's modules: they belong to the server


def start(args: list[str], *, env: dict[str, str], cwd: Path, output: Path) -> multiprocessing.process.BaseProcess:
    """``python -m pytest ARGS`` in ``cwd`` with ``env``, its stdout and stderr appended to ``output``; started, not
    waited for (``exitcode``, ``is_alive()`` and ``kill()`` as a Popen's ``returncode``, ``poll()`` and ``kill()``)."""
    output.touch()
    process = _server().Process(target=_pytest_main, args=(list(args), dict(env), str(cwd), str(output)))
    process.start()
    return process


def run_pytest(args: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str]:
    """``python -m pytest ARGS`` in ``cwd`` with ``env``: its exit code and its output (stdout and stderr)."""
    with tempfile.TemporaryDirectory(prefix="entmoot-pytest-") as scratch:
        output = Path(scratch) / "output.txt"
        process = start(args, env=env, cwd=cwd, output=output)
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(["pytest", *args], timeout, output=output.read_text())
        return process.exitcode if process.exitcode is not None else 1, output.read_text()
