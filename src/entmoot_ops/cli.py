"""``entmoot-ops``: the sandbox on its own (for psql, redis-cli, the aws CLI, locust) and the Allure report.

The checks themselves run through pytest (``pytest checks/ -m morning``); this command is for the rest.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path

from entmoot_ops.errors import OpsError


def _exports(state: dict, state_file: Path) -> list[str]:
    env = state["env"]
    # The suite reads ENTMOOT_SANDBOX_*; the standard names are for a person's tools in this shell.
    standard = {
        "ENTMOOT_SANDBOX_STATE": str(state_file),
        "AWS_ENDPOINT_URL": env["ENTMOOT_SANDBOX_AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": env["ENTMOOT_SANDBOX_AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": env["ENTMOOT_SANDBOX_AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "API_URL": env["ENTMOOT_SANDBOX_API_URL"],
        "API_TOKEN": env["ENTMOOT_SANDBOX_API_TOKEN"],
        "DATABASE_URL": env["ENTMOOT_SANDBOX_PG_PRIMARY_DSN"],
        "REPLICA_DATABASE_URL": env["ENTMOOT_SANDBOX_PG_REPLICA1_DSN"],
        "REDIS_URL": env["ENTMOOT_SANDBOX_REDIS_URL"],
        "REDISCLI_AUTH": env["ENTMOOT_SANDBOX_REDIS_PASSWORD"],
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in {**env, **standard}.items()]


def sandbox_up(arguments: argparse.Namespace) -> int:
    from entmoot_ops.sandbox.handle import start

    handle = start(arguments.state_file)
    handle.users = 1
    for line in _exports(handle.state, handle.state_file):
        print(line)
    print(f"# sandbox ready in {sum(handle.state['timings'].values()):.1f} s (pid {handle.state['pids']['supervisor']}); "
          "eval these lines in another shell, e.g.:", flush=True)
    print('#   psql "$DATABASE_URL"; redis-cli -u "$REDIS_URL" INFO stats; aws ecs list-clusters; '
          'curl -H "Authorization: Bearer $API_TOKEN" "$API_URL/health"', flush=True)
    print("# Ctrl-C stops it.", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            if handle.process.poll() is not None:
                raise OpsError(f"the sandbox exited with {handle.process.returncode}")
    except KeyboardInterrupt:
        pass
    finally:
        handle.release()
    return 0


def report(arguments: argparse.Namespace) -> int:
    from entmoot_ops.reports import generate_html

    index = generate_html(arguments.results, arguments.output, arguments.tools)
    print(f"Allure report: {index} (open it in a browser; it works offline)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="entmoot-ops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("sandbox", help="start the embedded sandbox and print its endpoints")
    up.add_argument("action", choices=["up"])
    up.add_argument("--state-file", type=Path, help="where to write the sandbox state (default: a temporary file)")
    up.set_defaults(run=sandbox_up)
    html = commands.add_parser("report", help="generate the Allure HTML report from reports/allure-results")
    html.add_argument("--results", type=Path, default=Path("reports/allure-results"))
    html.add_argument("--output", type=Path, default=Path("reports/allure-report"))
    html.add_argument("--tools", type=Path, default=Path("reports/.tools"), help="where allure-commandline is installed")
    html.set_defaults(run=report)
    arguments = parser.parse_args(argv)
    try:
        return arguments.run(arguments)
    except OpsError as exc:
        print(f"entmoot-ops: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
