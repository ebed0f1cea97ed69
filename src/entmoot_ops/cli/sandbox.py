"""``entmoot-ops sandbox``: the embedded sandbox on its own (up, env, status, down, fault, traffic)."""

from __future__ import annotations

import argparse
import difflib
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

from entmoot_ops.cli.common import Refused, declared_policies, plain
from entmoot_ops.errors import OpsError
from entmoot_ops.secrets import masker


MAX_TRAFFIC_RPS, MAX_TRAFFIC_SECONDS = 200, 3600


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


def _state_file(arguments: argparse.Namespace) -> Path:
    from entmoot_ops.sandbox.handle import default_state_file

    return arguments.state_file or default_state_file()


def sandbox_up(arguments: argparse.Namespace) -> int:
    from entmoot_ops.sandbox.handle import running, start

    state_file = _state_file(arguments)
    if arguments.foreground:
        return _foreground(start(state_file))
    handle = running(state_file)
    if handle is not None:
        print(f"sandbox already running (pid {handle.state['pids']['supervisor']}); "
              f'use it with: eval "$(entmoot-ops sandbox env{_state_option(arguments)})"')
        return 0
    from entmoot_ops.config import environments_dir, load_environment

    # A project error is said before anything starts.
    policies = declared_policies(load_environment("sandbox", environments_dir())) if arguments.iam else None
    print("starting the sandbox (PostgreSQL primary and replica, Redis, moto, the API) ...", file=sys.stderr, flush=True)
    began = time.monotonic()
    handle = start(state_file, detached=True)
    if policies is not None:
        handle.enforce_iam(policies)
        print("IAM enforced: each run signs as the sandbox's user for its mode (check, remediate, chaos, load), "
              "holding exactly `entmoot-ops iam-policy MODE`", file=sys.stderr)
    if not handle.state["postgis"]:
        print("PostGIS is not installed (Debian: postgresql-15-postgis-3): buildings.geom is a box, behind SQL stand-ins "
              "for ST_MakeEnvelope and ST_Intersects", file=sys.stderr)
    # The wall time waited, not the sum of the components' timings: PostgreSQL's start overlaps moto's.
    print(f"sandbox ready in {time.monotonic() - began:.1f} s (pid {handle.state['pids']['supervisor']}); "
          f'use it with: eval "$(entmoot-ops sandbox env{_state_option(arguments)})"; '
          f"stop it with: entmoot-ops sandbox down{_state_option(arguments)}")
    return 0


def _state_option(arguments: argparse.Namespace) -> str:
    return f" --state-file {shlex.quote(str(arguments.state_file))}" if arguments.state_file else ""


def _foreground(handle: object) -> int:
    handle.users = 1
    # Ctrl-C and SIGTERM are handled before "ready" is said: a signal sent the instant after must stop the sandbox
    # cleanly, and a SIGINT that a parent (nohup, a CI runner) set to be ignored is not ignored here.
    done = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: done.set())
    try:
        for line in _exports(handle.state, handle.state_file):
            print(line)
        print("# sandbox ready; eval these lines in another shell. Ctrl-C stops it.", flush=True)
        while not done.wait(0.5):
            if handle.process.poll() is not None:
                raise OpsError(f"the sandbox exited with {handle.process.returncode}")
    finally:
        handle.release()
    return 0


def sandbox_env(arguments: argparse.Namespace) -> int:
    from entmoot_ops.sandbox.handle import attach

    handle = attach(_state_file(arguments), what="sandbox")
    for line in _exports(handle.state, handle.state_file):
        print(line)
    print('# then: psql "$DATABASE_URL"; redis-cli -u "$REDIS_URL" INFO stats; aws ecs list-clusters; '
          'curl -H "Authorization: Bearer $API_TOKEN" "$API_URL/api/projects"')
    return 0


def _running(arguments: argparse.Namespace):  # noqa: ANN202 - a SandboxHandle, imported lazily
    from entmoot_ops.sandbox.handle import running

    return running(_state_file(arguments))


def sandbox_status(arguments: argparse.Namespace) -> int:
    handle = _running(arguments)
    if handle is None:
        print("sandbox: not running")
        return 1
    try:
        state = handle.control("GET", "state", timeout=5)
    except (OpsError, OSError) as exc:  # requests' errors are OSErrors
        print(f"sandbox: process {handle.state['pids']['supervisor']} is there but its control interface does not answer "
              f"(frozen?): {type(exc).__name__}")
        return 1
    print(f"sandbox: running (pid {state['pids']['supervisor']}, state {handle.state_file})")
    for name, port in state["ports"].items():
        pid = state["pids"].get(name)
        print(f"  {name:8} 127.0.0.1:{port}" + (f"  pid {pid}" if pid else ("  (stopped)" if name in state["pids"] else "")))
    print(f"  faults  {', '.join(state['faults']) or 'none'}")
    return 0


def sandbox_down(arguments: argparse.Namespace) -> int:
    handle = _running(arguments)
    if handle is None:
        print("sandbox: not running; nothing to stop")
        return 0
    pid = handle.state["pids"]["supervisor"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    handle.state_file.unlink(missing_ok=True)
    print(f"sandbox stopped (pid {pid})")
    return 0


def _control(arguments: argparse.Namespace):  # noqa: ANN202 - a SandboxHandle, imported lazily
    from entmoot_ops.sandbox.handle import attach

    return attach(_state_file(arguments), what="sandbox")


def _parameter(text: str) -> tuple[str, str]:
    """``rate=0.3`` -> ("rate", "0.3"): the fault's signature says what the text is (entmoot_ops.sandbox.faults.arguments)."""
    name, found, value = text.partition("=")
    if not found or not name:
        raise Refused(f"fault parameter {text!r}: write NAME=VALUE", fix="e.g. rate=0.3 or version=1.6.0")
    return name, value


def sandbox_fault(arguments: argparse.Namespace) -> int:
    """The faults of the sandbox's control interface, for a person at a shell: list, inject, undo."""
    from entmoot_ops.sandbox import faults

    if arguments.verb == "list":
        handle = _running(arguments)  # with none running, the list says what there is to inject
        active = set(handle.control("GET", "state", timeout=10)["faults"]) if handle else set()
        for name, fault in sorted(faults.FAULTS.items()):
            summary = plain(" ".join((fault.__doc__ or "").split()).split(". ")[0].rstrip("."))
            print(f"{'ACTIVE ' if name in active else '       '}{name:<26} {summary}\n{'':34}{faults.usage(name)}")
        return 0
    if arguments.name not in faults.FAULTS:
        close = difflib.get_close_matches(arguments.name or "", faults.FAULTS, n=3)
        raise Refused(f"no sandbox fault {arguments.name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""),
                      fix="entmoot-ops sandbox fault list")
    if arguments.verb == "inject":
        try:
            params = faults.arguments(arguments.name, dict(_parameter(p) for p in arguments.params))
        except TypeError as exc:
            raise Refused(str(exc)) from None
        _control(arguments).inject(arguments.name, **params)
        # Echoed as every output is: what a fault carries (a log message, say) may hold a secret.
        print(f"sandbox: fault {arguments.name} injected{' with ' + masker.dumps(params) if params else ''}; "
              f"undo it with: entmoot-ops sandbox fault undo {arguments.name}")
    else:
        _control(arguments).undo(arguments.name)
        print(f"sandbox: fault {arguments.name} undone")
    return 0


def sandbox_traffic(arguments: argparse.Namespace) -> int:
    """Authenticated requests through the sandbox API at a steady rate for a bounded time, then a count of answers."""
    from entmoot_ops.sandbox.traffic import Traffic

    if not (0 < arguments.rps <= MAX_TRAFFIC_RPS and 0 < arguments.seconds <= MAX_TRAFFIC_SECONDS):
        raise Refused(f"traffic of {arguments.rps:g} requests/s for {arguments.seconds:g} s is outside 0..{MAX_TRAFFIC_RPS} "
                      f"requests/s and 0..{MAX_TRAFFIC_SECONDS} s", fix="ask for less")
    handle = _control(arguments)
    env = handle.env
    headers = {"Authorization": f"Bearer {env['ENTMOOT_SANDBOX_API_TOKEN']}"}
    print(f"sandbox: {arguments.rps:g} requests/s to {arguments.path} for {arguments.seconds:g} s ...", flush=True)
    with Traffic(env["ENTMOOT_SANDBOX_API_URL"], headers, arguments.path, per_second=arguments.rps) as traffic:
        time.sleep(arguments.seconds)
    handle.sync()
    answers = ", ".join(f"{n} {kind}" for kind, n in sorted(traffic.answers.items())) or "none"
    print(f"sandbox: {sum(traffic.answers.values())} requests sent; answers: {answers}")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def add_commands(commands: argparse._SubParsersAction) -> None:
    sandbox = commands.add_parser("sandbox", help="the embedded sandbox on its own: up, env, status, down, fault, traffic")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    state_file = argparse.ArgumentParser(add_help=False)
    state_file.add_argument("--state-file", type=Path, help="the sandbox's state file (default: ~/.local/state/entmoot-ops/sandbox.json)")
    for name, run, text in (("up", sandbox_up, "start it and return once ready"), ("env", sandbox_env, "print eval-able exports"),
                            ("status", sandbox_status, "what runs where, and the active faults"), ("down", sandbox_down, "stop it")):
        command = sandbox_commands.add_parser(name, parents=[state_file], help=text)
        command.set_defaults(run=run)
        if name == "up":
            command.add_argument("--foreground", action="store_true", help="print the exports and run until Ctrl-C")
            command.add_argument("--iam", action="store_true",
                                 help="enforce IAM: the suite signs as a user holding exactly its mode's policy")
    fault = sandbox_commands.add_parser("fault", parents=[state_file], help="list, inject or undo a fault of the running sandbox")
    fault.add_argument("verb", choices=("list", "inject", "undo"))
    fault.add_argument("name", nargs="?", help="the fault (see: entmoot-ops sandbox fault list)")
    fault.add_argument("params", nargs="*", metavar="NAME=VALUE", help="the fault's parameters, e.g. rate=0.3")
    fault.set_defaults(run=sandbox_fault)
    traffic = sandbox_commands.add_parser("traffic", parents=[state_file], help="steady authenticated traffic through the sandbox API")
    traffic.add_argument("--rps", type=float, default=20, help=f"requests a second (at most {MAX_TRAFFIC_RPS}; default 20)")
    traffic.add_argument("--seconds", type=float, required=True, help=f"for how long (at most {MAX_TRAFFIC_SECONDS})")
    traffic.add_argument("--path", default="/api/projects/{id}", help="the route; {id} cycles over 1..50")
    traffic.set_defaults(run=sandbox_traffic)
