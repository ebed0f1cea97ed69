"""Prints the incident bundles' wall time on the sandbox, and the log API calls of the log analysis against log volume.

The goal: a constant number of calls when the volume grows 10x. Logs Insights aggregates on the server (two
StartQuery and their GetQueryResults for the grouped errors, one of each for the slow paths); the FilterLogEvents
fallback reads raw events and so stops at logs.max_pages pages, complete or not.
Usage: python bench/incident.py [BASE_EVENTS]   (uses a running sandbox, else starts its own)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3

from entmoot_ops.clients import Clients
from entmoot_ops.config import load_environment
from entmoot_ops.logsearch.cloudwatch import CloudWatchLogs
from entmoot_ops.probes.cloudwatch import Window
from entmoot_ops.sandbox.handle import attach_or_start
from performance_page import recorded

ROOT = Path(__file__).resolve().parent.parent


def _logs(env: dict[str, str]):  # noqa: ANN202 - a boto3 client
    return boto3.client("logs", endpoint_url=env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id=env["ENTMOOT_SANDBOX_AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["ENTMOOT_SANDBOX_AWS_SECRET_ACCESS_KEY"])


def _put(env: dict[str, str], stream: str, count: int) -> None:
    logs = _logs(env)
    now = int(time.time() * 1000)
    for start in range(0, count, 5000):
        events = []
        for i in range(start, min(count, start + 5000)):
            error = i % 10 == 0
            line = {"level": "ERROR" if error else "INFO", "request_id": f"bench-{i}", "method": "GET", "path": f"/api/p{i % 7}",
                    "status": 500 if error else 200, "duration_ms": 1500.0 if i % 20 == 1 else 12.0}
            if error:
                line["error"] = ("DatabaseError: QueuePool limit reached", "ReadTimeout: elevation API")[i % 20 == 0]
            events.append({"timestamp": now - (count - i), "message": json.dumps(line)})
        logs.put_log_events(logGroupName="/ecs/entmoot-sandbox", logStreamName=stream, logEvents=events)


def _calls(directory: Path | None) -> list[str]:
    clients = Clients(load_environment("sandbox", directory))
    window = Window(datetime.now(UTC) - timedelta(minutes=30), datetime.now(UTC) + timedelta(seconds=2), 60)
    search = CloudWatchLogs(clients)
    started = time.perf_counter()
    errors = search.error_groups(window, 100)
    slow = search.slow_paths(window, 1000, 10)
    seconds = time.perf_counter() - started
    clients.close()
    return [f"{errors.source.split(' /')[0]:<30} {errors.api_calls + slow.api_calls:>3} calls  {seconds:5.2f} s  "
            f"errors read {errors.errors:>6}  complete {errors.complete and slow.complete}"]


def main() -> None:
    base = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    sandbox = attach_or_start()
    os.environ.update(sandbox.env)
    scratch = Path(tempfile.mkdtemp(prefix="bench-incident-"))
    fallback = scratch / "environments"
    fallback.mkdir()
    text = (ROOT / "environments" / "sandbox.toml").read_text()
    (fallback / "sandbox.toml").write_text(text.replace('group = "/ecs/entmoot-sandbox"\n', 'group = "/ecs/entmoot-sandbox"\ninsights = false\n'))
    print("log analysis, CloudWatch Logs group /ecs/entmoot-sandbox (sandbox moto), window 30 min")
    added = 0
    streams = []
    for volume in (base, 10 * base):
        streams.append(f"bench/{time.monotonic_ns()}")
        _logs(sandbox.env).create_log_stream(logGroupName="/ecs/entmoot-sandbox", logStreamName=streams[-1])
        _put(sandbox.env, streams[-1], volume - added)
        added = volume
        for directory in (None, fallback):
            for line in _calls(directory):
                print(f"  {volume:>7} events  {line}")
    for stream in streams:  # the bench's lines would be the next checks' slow endpoints and errors
        _logs(sandbox.env).delete_log_stream(logGroupName="/ecs/entmoot-sandbox", logStreamName=stream)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "checks/", "-m", "incident", "-q", "--reports-dir", str(scratch / "reports")],
                          cwd=ROOT, env={**os.environ, "ENTMOOT_SANDBOX_STATE": str(sandbox.state_file)}, capture_output=True, text=True)
    summary = next((line for line in reversed(done.stdout.splitlines()) if line.startswith("checks:")), done.stdout[-300:])
    print(f"pytest checks/ -m incident on the sandbox: {time.monotonic() - started:.1f} s wall ({summary})")
    sandbox.release()


if __name__ == "__main__":
    with recorded("incident"):  # and to its section of docs/performance.md
        main()
