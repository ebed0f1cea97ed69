"""Prints what the network costs a run: the morning checklist on one environment with a fixed round-trip time added
in front of every dependency (0, 50 and 100 ms), its depth (the extra wall time in round trips), ten environments in
one run against one at 100 ms, and the CPU each environment costs the suite's own process.

Every dependency of the sandbox that a check reaches over the network (the AWS endpoint, the API and its HTTPS
listener, the PostgreSQL primary and replica, Redis) is reached through a proxy of this script's (latency_proxy.py),
each environment through its own proxies, as each environment of a fleet has its own endpoints. The environment
files are the sandbox's, as a real environment's (``kind = "aws"``): nothing of the sandbox's own shortcuts.

Targets (issue 33): depth of the morning on one environment at most 6 round trips, and at most 1.5 s more at 100 ms
than at 0 ms; ten environments at 100 ms in at most 1.5x one environment at 100 ms.
Usage: python bench/latency.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from entmoot_ops.sandbox.handle import start
from latency_proxy import LatencyProxy, proxied
from performance_page import recorded

ROOT = Path(__file__).resolve().parent.parent
PROXIED = ("AWS_ENDPOINT_URL", "API_URL", "HTTPS_URL", "PG_PRIMARY_DSN", "PG_ADMIN_DSN", "PG_REPLICA1_DSN", "REDIS_URL")
PREFIX = "ENTMOOT_SANDBOX_"


def environment_files(directory: Path, names: list[str]) -> None:
    """The sandbox's environment file under each name, reading its endpoints from variables of its own."""
    text = (ROOT / "environments" / "sandbox.toml").read_text().replace('kind = "sandbox"', 'kind = "aws"')
    for name in names:
        directory.joinpath(f"{name}.toml").write_text(text.replace(f"env:{PREFIX}", f"env:{name.upper()}_"))


def run(names: list[str], directory: Path, variables: dict[str, str], *extra: str) -> tuple[float, float, str]:
    """One morning run over these environments: its wall time, the CPU its processes used, and pytest's last line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    selection = [arg for name in names for arg in ("--env", name)]
    with tempfile.TemporaryDirectory() as reports:
        completed = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "morning", "-q", "-p", "no:cacheprovider",
                                    "--environments-dir", str(directory), *selection, "--reports-dir", reports, *extra],
                                   cwd=ROOT, capture_output=True, text=True, env=variables)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    last = (completed.stdout.strip().splitlines() or ["(no output)"])[-1]
    if completed.returncode not in (0, 1):
        sys.exit(f"the morning run failed to run (exit {completed.returncode}): {last}\n{completed.stderr[-2000:]}")
    for line in completed.stdout.splitlines():  # a verdict that is not a pass is a finding of its own: shown
        if line.startswith(("FAIL", "ERROR")):
            print(f"    {line[:200]}")
    return wall, cpu, last


def median_run(runs: int, *args: object) -> tuple[float, float, str]:
    measured = [run(*args) for _ in range(runs)]
    return (statistics.median(w for w, _, _ in measured), statistics.median(c for _, c, _ in measured), measured[-1][2])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    handle = start()
    handle.users = 1
    proxy = LatencyProxy()
    try:
        names = [f"fleet{i:02d}" for i in range(1, 11)]
        variables = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX) and not k.startswith("AWS_")}
        variables.update(AWS_EC2_METADATA_DISABLED="true", PYTHONDONTWRITEBYTECODE="")
        for name in names:
            for key, value in handle.env.items():
                if key.startswith(PREFIX):
                    short = key.removeprefix(PREFIX)
                    variables[f"{name.upper()}_{short}"] = proxied(value, proxy) if short in PROXIED else value
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            environment_files(directory, names)
            run(names[:1], directory, variables)  # the first run compiles and caches what later runs reuse
            one: dict[int, tuple[float, float, str]] = {}
            for rtt in (0, 50, 100):
                proxy.rtt_ms = rtt
                one[rtt] = median_run(runs, names[:1], directory, variables)
                print(f"morning, 1 environment, +{rtt:>3} ms round trip: wall {one[rtt][0]:5.2f} s  CPU {one[rtt][1]:5.2f} s  [{one[rtt][2]}]")
            for rtt in (50, 100):
                depth = (one[rtt][0] - one[0][0]) / (rtt / 1000)
                print(f"depth at +{rtt} ms: {one[rtt][0] - one[0][0]:.2f} s more than at 0 ms = {depth:.1f} round trips "
                      f"(targets: at most 6 round trips; at most 1.5 s more at 100 ms)")
            proxy.rtt_ms = 100
            for extra in ((), ("-n", "2")):
                ten = median_run(runs, names, directory, variables, *extra)
                label = " ".join(extra) or "one process"
                print(f"morning, 10 environments, +100 ms, {label}: wall {ten[0]:5.2f} s  CPU {ten[1]:5.2f} s  "
                      f"= {ten[0] / one[100][0]:.2f}x one environment (target: at most 1.5x)  [{ten[2]}]")
                if not extra:
                    print(f"CPU per environment (client side): {(ten[1] - one[100][1]) / 9:.2f} s each beyond the first "
                          f"(one environment's run: {one[100][1]:.2f} s, interpreter and collection included)")
    finally:
        proxy.close()
        handle.release()


if __name__ == "__main__":
    with recorded("latency"):
        main()
