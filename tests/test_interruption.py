"""Ctrl-C in the middle of a check: one line says which check it stopped and how much was judged, the experiment it
stopped has rolled back, and no helper process prints a traceback of its own. (It ended in
``forkserver.py:326: KeyboardInterrupt`` with no word of the run.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import default_signals

ROOT = Path(__file__).resolve().parent.parent


def test_ctrl_c_during_an_experiment_says_what_it_stopped_and_leaves_the_sandbox_healthy(sandbox, run_checks, tmp_path):
    environment = {**os.environ, "ENTMOOT_SANDBOX_STATE": str(sandbox.state_file)}
    run = subprocess.Popen([sys.executable, "-m", "pytest", "checks/", "-m", "chaos", "--check", "chaos.kill-primary",
                            "--reports-dir", str(tmp_path / "reports"), "--charts", "none"], cwd=ROOT, env=environment,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=default_signals)
    seen = b""
    deadline = time.monotonic() + 120
    while b"checks/test_chaos.py" not in seen and time.monotonic() < deadline:  # the experiment has begun
        chunk = os.read(run.stdout.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
    os.killpg(run.pid, signal.SIGINT)  # as a terminal sends it: to the whole foreground group
    output = (seen + run.stdout.read()).decode(errors="replace")
    assert run.wait(120) == 2, output[-3000:]
    assert "interrupted during checks/test_chaos.py::test_kill_primary[sandbox]: 0 check(s) judged, 1 not judged" in output, output[-3000:]
    assert "Traceback" not in output and "forkserver" not in output, output[-3000:]
    after = run_checks("-m", "morning", "--check", "postgres.connections", "--check", "replication.streaming")
    assert {r.outcome for r in after.results} == {"pass"}, after.output[-3000:]
