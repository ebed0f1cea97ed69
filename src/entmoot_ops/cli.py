"""``entmoot-ops``: the sandbox on its own (for psql, redis-cli, the aws CLI, locust) and the Allure report.

The checks themselves run through pytest (``pytest checks/ -m morning``); this command is for the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from entmoot_ops.errors import ConfigError, OpsError
from entmoot_ops.secrets import masker

if TYPE_CHECKING:
    from entmoot_ops.config import Environment


def plain(text: str) -> str:
    """A docstring's words for a terminal: without the ``literal`` markup they carry for the source's reader."""
    return text.replace("``", "")


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
    policies = _declared_policies(load_environment("sandbox", environments_dir())) if arguments.iam else None
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


def _declared_policies(env: object) -> dict:
    from entmoot_ops import iam

    # The remediations live in the project beside checks/, as pytest finds them: run from the project's directory.
    sys.path.insert(0, str(Path.cwd()))
    try:
        return iam.policies(env)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the IAM policies read the remediations of the project: {exc}",
                          fix="run it from the project's directory (the one holding checks/ and remediations/)") from None


def _project_checks(checks_dir: Path) -> list:
    """The catalogue of the project's checks (run from the project's directory, as pytest runs them)."""
    from entmoot_ops import catalogue

    if not checks_dir.is_dir():
        raise ConfigError(f"no checks directory at {checks_dir.resolve()}",
                          fix="run it from the project's directory (the one holding checks/), or pass --checks-dir")
    sys.path.insert(0, str(checks_dir.resolve().parent))
    return catalogue.checks(checks_dir)


def checks_listing(arguments: argparse.Namespace) -> int:
    """Every check: id, title, markers, severity, runbook section and remediation."""
    from entmoot_ops import catalogue
    from entmoot_ops.check import CHECKLISTS

    if arguments.marker and arguments.marker not in CHECKLISTS:
        close = difflib.get_close_matches(arguments.marker, CHECKLISTS, n=1)
        raise ConfigError(f"no checklist named {arguments.marker}" + (f"; did you mean {close[0]}?" if close else ""),
                          fix=f"one of: {', '.join(CHECKLISTS)}")
    entries = [e for e in _project_checks(arguments.checks_dir) if not arguments.marker or arguments.marker in e.markers]
    if arguments.json:
        print(json.dumps([dataclasses.asdict(e) for e in entries], indent=2))
    else:
        print("\n".join(catalogue.table(entries)))
    return 0


def _coverage(checks_dir: Path, runbook: Path | None) -> list:
    from entmoot_ops import coverage
    from entmoot_ops.chaos import catalog
    from entmoot_ops.remediation import REGISTRY

    entries = _project_checks(checks_dir)
    try:
        import remediations  # noqa: F401 - registers the project's remediations
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the coverage reads the remediations of the project: {exc}",
                          fix="run it from the project's directory (the one holding checks/ and remediations/)") from None
    try:
        text = coverage.runbook_text(runbook)
    except OSError as exc:
        raise ConfigError(f"cannot read the runbook {runbook}: {exc.strerror}") from None
    return coverage.rows(text, entries, {r.id: r.section for r in REGISTRY.values()},
                         {e.name: e.section for e in catalog.experiments(checks_dir.resolve().parent).values()})


def coverage_table(arguments: argparse.Namespace) -> int:
    """Each runbook section and procedure with what covers it, and what nothing covers."""
    from entmoot_ops import coverage

    rows = _coverage(arguments.checks_dir, arguments.runbook)
    if arguments.json:
        print(json.dumps([{"heading": r.heading.title, "anchor": r.heading.anchor, "level": r.heading.level,
                           "checks": r.checks, "remediations": r.remediations, "experiments": r.experiments,
                           "covered": r.covered} for r in rows], indent=2))
    else:
        print("\n".join(coverage.table(rows)))
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


MAX_TRAFFIC_RPS, MAX_TRAFFIC_SECONDS = 200, 3600


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


MATRIX_DEADLINE_SECONDS = 30


def _environment(arguments: argparse.Namespace) -> Environment:
    """The environment a command acts on; what it prints from it is redacted by that environment's rules."""
    from entmoot_ops import redaction
    from entmoot_ops.config import environments_dir, load_environment

    env = load_environment(arguments.env, arguments.environments_dir or environments_dir())
    redaction.adopt([env.redaction])
    return env


class Refused(OpsError):
    """A request the command will not carry out as asked: exit 4, like a usage error, before any call."""


def iam_policy(arguments: argparse.Namespace) -> int:
    """The least-privilege IAM policy of a mode, from the actions the code declares (entmoot_ops.iam)."""
    env = _environment(arguments)
    print(json.dumps(_declared_policies(env)[arguments.mode], indent=2))
    return 0


def scale(arguments: argparse.Namespace) -> int:
    """Runbook Scaling API Servers / Scaling Out, bounded to ecs.min_count..max_count, audited, verified."""
    from entmoot_ops import actions, preflight
    from entmoot_ops.clients import Clients
    from entmoot_ops.probes import ecs
    from entmoot_ops.remediation import AuditLog

    env = _environment(arguments)
    settings, tag = env.ecs, f"[{env.name}]"
    bounds = f"{settings.min_count}..{settings.max_count}"
    if arguments.to is not None and not settings.min_count <= arguments.to <= settings.max_count:
        raise Refused(f"{tag} refused: {arguments.to} tasks is outside the bounds {bounds} (ecs.min_count..max_count)",
                      fix=f"ask for a count within {bounds}")
    if env.production and not (arguments.yes or arguments.dry_run):
        raise Refused(f"{tag} is production: scaling needs --yes", fix="add --yes, or --dry-run to see the plan")
    if env.kind == "sandbox":
        from entmoot_ops.sandbox.handle import attach_running

        # Scaling a throwaway sandbox would prove nothing and leave an audit entry that looks real.
        attach_running().sign_as("remediate")
    checked = preflight.run(env, remediate=False)
    if not checked.ok:
        raise OpsError(checked.line(), fix="")
    readonly = Clients(env, preflight=checked)
    current = ecs.service_state(readonly).desired  # a dry run reads too: its plan says the count it starts from
    target = arguments.to if arguments.to is not None else actions.scaled_count(
        current, minimum=settings.min_count, maximum=settings.max_count, step=settings.scale_out_step)
    command = f"aws ecs update-service --cluster {settings.cluster} --service {settings.service} --desired-count {target}"
    if arguments.dry_run:
        print(f"{tag} plan: {command} (from {current}; bounds {bounds}); "
              "dry run: no change made")
        return 0
    if target == current:
        print(f"{tag} {settings.service} already at {current} tasks (bounds {bounds}): nothing to do")
        return 0
    writable = Clients(env, writable=True, preflight=checked)
    actions.set_desired_count(writable, target)
    wait = actions.wait_stable(readonly)
    AuditLog(arguments.audit_log).write(env=env.name, check_id="(manual)", remediation_id="ecs.scale", event="acted",
                                        changes=[{"action": "ecs:UpdateService desiredCount", "before": current, "after": target}],
                                        stable=wait.state.stable)
    print(f"{tag} scaled {settings.service} from {current} to {target}; running {wait.state.running}/{wait.state.desired} "
          f"after {wait.waited_seconds:g} s{'' if wait.state.stable else ' (NOT stable: ' + wait.state.describe() + ')'}")
    return 0 if wait.state.stable else 1


def chaos_list(arguments: argparse.Namespace) -> int:
    from entmoot_ops.chaos import catalog, guard
    env = _environment(arguments)
    for experiment in catalog.select(Path.cwd(), [env]).values():
        refused = guard.refusal(env, experiment) if env.chaos.allowed else f"chaos.allowed is not true for {env.name}"
        detectors = ", ".join(experiment.detectors) or "(none: absorbed)"
        stops = f"; stops on alarm {', '.join(experiment.stop_alarms)}" if experiment.stop_alarms else ""
        print(f"{experiment.name:<22} {experiment.platform:<7} detected by {detectors}{stops}"
              f"{'' if refused is None else '  [refused: ' + refused + ']'}")
    return 0


def chaos_validate(arguments: argparse.Namespace) -> int:
    """Every experiment file a chaos run against the environment may select (the project's and its [chaos]
    experiments_dir), each one that is wrong in one line naming the file and the key: exit 4 if any is."""
    from entmoot_ops.chaos import files
    env = _environment(arguments)
    valid, wrong = files.load(files.directories(Path.cwd(), [env]))
    for error in wrong.values():
        print(masker(f"entmoot-ops: {error}"), file=sys.stderr)
    print(f"{len(valid)} experiment files valid, {len(wrong)} not")
    return 4 if wrong else 0


def chaos_gameday(arguments: argparse.Namespace) -> int:
    """The experiments in order against one environment, as ``pytest checks/ -m chaos --gameday``; refused in one
    line, before anything starts, if one is unknown or not allowed there."""
    from entmoot_ops.chaos import catalog, guard
    from entmoot_ops.config import environments_dir, load_environment

    directory = arguments.environments_dir or environments_dir()
    env = load_environment(arguments.env, directory)
    guard.refuse_unless_allowed(env, confirmed=arguments.yes)
    known = catalog.select(Path.cwd(), [env])
    names = [n.strip() for n in arguments.experiments.split(",") if n.strip()] if arguments.experiments else list(env.chaos.experiments)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            raise Refused(f"no experiment {name}" + (f"; did you mean {close[0]}?" if close else ""),
                          fix=f"one of: {', '.join(known)} (entmoot-ops chaos list --env {env.name})")
        refused = guard.refusal(env, known[name])
        if refused:
            raise Refused(f"game day on {env.name} refused: {refused}", fix="allow it in [chaos] experiments, or leave it out")
    if not names:
        raise Refused(f"no experiment to run: [chaos] experiments of {env.name} is empty", fix="name them with --experiments a,b")
    command = [sys.executable, "-m", "pytest", "checks/", "-m", "chaos", "--env", env.name, "--environments-dir", str(directory),
               "--gameday", ",".join(names), "--gameday-pause", f"{arguments.pause:g}",
               *(["--reports-dir", str(arguments.reports_dir)] if arguments.reports_dir else []), *(["--yes"] if arguments.yes else [])]
    return subprocess.call(command)


def chaos_matrix(arguments: argparse.Namespace) -> int:
    """Every sandbox fault against the checklists; writes matrix.json, .html and junit; exit 1 on a miss or false alarm."""
    from entmoot_ops.chaos import matrix, observe
    from entmoot_ops.clients import Clients
    from entmoot_ops.config import environments_dir, load_environment
    from entmoot_ops.sandbox.faults import FAULTS
    from entmoot_ops.sandbox.handle import attach_or_start
    from entmoot_ops.sandbox.traffic import Traffic

    missing = matrix.uncovered(set(FAULTS))
    if missing:
        raise OpsError(f"sandbox faults with no row in the detection matrix: {', '.join(sorted(missing))}")
    expectations = tuple(e for e in matrix.EXPECTATIONS if not arguments.fault or e.fault in arguments.fault)
    if not expectations:
        raise OpsError(f"no fault named {', '.join(arguments.fault)} (known: {', '.join(sorted(FAULTS))})")
    handle = attach_or_start()
    try:
        env = load_environment("sandbox", arguments.environments_dir or environments_dir())
        clients = Clients(env)
        settings = env.api
        checks = observe.CheckRunner(Path("checks").resolve(), "sandbox", arguments.environments_dir,
                                     {"ENTMOOT_SANDBOX_STATE": str(handle.state_file)})
        # The checks' own session stops asking a dead endpoint; the traffic must go on through every fault.
        with Traffic(clients.api_url, dict(clients.http().headers), settings.protected_path + "/{id}"):
            # CloudWatch's delay comes first: a datapoint is not readable before it, whatever the check.
            deadline = arguments.deadline if arguments.deadline is not None else (
                MATRIX_DEADLINE_SECONDS + handle.state.get("cloudwatch_delay", [0, 0])[1])
            rows = matrix.Matrix(checks, handle, deadline_seconds=deadline).run(expectations)
    finally:
        handle.release()
    paths = matrix.write(rows, arguments.output)
    totals = matrix.summary(rows)
    for row in rows:
        verdict = "caught" if row.caught else "MISSED"
        detail = ", ".join(f"{c} {s:g} s" for c, s in row.detected.items()) or row.error or "-"
        alarms = f"  false alarms: {', '.join(row.false_alarms)}" if row.false_alarms else ""
        print(f"{verdict:<7} {row.name:<45} {detail}{alarms}")
    print(f"detection matrix: {totals['caught']} of {totals['faults']} caught, {totals['missed']} missed, {totals['false_alarms']} "
          f"false alarms, median detection {totals['median_detection_seconds']} s; {paths['html']}")
    return 0 if totals["missed"] == 0 and totals["false_alarms"] == 0 else 1


def report(arguments: argparse.Namespace) -> int:
    from entmoot_ops import coverage
    from entmoot_ops.reports import generate_html, write_coverage_result

    if arguments.results.is_dir() and any(arguments.results.glob("*-result.json")):
        rows = _coverage(arguments.checks_dir, None)
        write_coverage_result(arguments.results, coverage.html_table(rows), coverage.summary(rows))
    index = generate_html(arguments.results, arguments.output, arguments.tools, arguments.history)
    print(f"Allure report: {index.resolve()} (one file; open it in a browser, no network needed)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="entmoot-ops", description=plain(__doc__.splitlines()[0]))
    commands = parser.add_subparsers(dest="command", required=True)
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
    scaler = commands.add_parser("scale", help="scale the API service out by +2 or to a count, within its bounds")
    scaler.add_argument("--env", default=os.environ.get("ENTMOOT_ENV") or "sandbox")
    scaler.add_argument("--environments-dir", type=Path)
    how = scaler.add_mutually_exclusive_group(required=True)
    how.add_argument("--out", action="store_true", help="add ecs.scale_out_step tasks (runbook: +2)")
    how.add_argument("--to", type=int, metavar="COUNT", help="a desired count within ecs.min_count..max_count (else refused, exit 4)")
    scaler.add_argument("--yes", action="store_true", help="confirm on a production environment")
    scaler.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    scaler.add_argument("--audit-log", type=Path, default=Path("reports/audit.jsonl"))
    scaler.set_defaults(run=scale)
    policy = commands.add_parser("iam-policy", help="print the least-privilege IAM policy of a mode as JSON")
    policy.add_argument("mode", choices=("check", "remediate", "chaos", "load"),
                        help="check: the checklists; remediate: --remediate and entmoot-ops scale; chaos: -m chaos; load: -m load")
    policy.add_argument("--env", default=os.environ.get("ENTMOOT_ENV") or "sandbox")
    policy.add_argument("--environments-dir", type=Path)
    policy.set_defaults(run=iam_policy)
    chaos = commands.add_parser("chaos", help="chaos experiments (run them with pytest checks/ -m chaos) and the detection matrix")
    chaos_commands = chaos.add_subparsers(dest="chaos_command", required=True)
    listing = chaos_commands.add_parser("list", help="the experiments, and which the environment allows")
    listing.add_argument("--env", default=os.environ.get("ENTMOOT_ENV") or "sandbox")
    listing.add_argument("--environments-dir", type=Path)
    listing.set_defaults(run=chaos_list)
    checking = chaos_commands.add_parser("validate", help="check every experiment file (a chaos run reads only those it selects)")
    checking.add_argument("--env", default=os.environ.get("ENTMOOT_ENV") or "sandbox")
    checking.add_argument("--environments-dir", type=Path)
    checking.set_defaults(run=chaos_validate)
    day = chaos_commands.add_parser("gameday", help="experiments in order, a pause between them, one report (reports/gameday/, Allure)")
    day.add_argument("--env", default=os.environ.get("ENTMOOT_ENV") or "sandbox")
    day.add_argument("--environments-dir", type=Path)
    day.add_argument("--experiments", metavar="A,B,...", help="in this order (default: the environment's [chaos] experiments)")
    day.add_argument("--pause", type=float, default=10, metavar="SECONDS",
                     help="between two experiments (default 10), beside each one's wait for its steady state")
    day.add_argument("--reports-dir", type=Path, help="default ./reports")
    day.add_argument("--yes", action="store_true", help="confirm a game day on a production environment")
    day.set_defaults(run=chaos_gameday)
    grid = chaos_commands.add_parser("matrix", help="every sandbox fault against the checklists: caught, missed, false alarms")
    grid.add_argument("--environments-dir", type=Path)
    grid.add_argument("--fault", action="append", default=[], help="only this fault (repeatable)")
    grid.add_argument("--deadline", type=float, default=None,
                      help=f"seconds a fault has to be detected (default {MATRIX_DEADLINE_SECONDS} beyond the sandbox's CloudWatch delay)")
    grid.add_argument("--output", type=Path, default=Path("reports/chaos-matrix"))
    grid.set_defaults(run=chaos_matrix)
    listing = commands.add_parser("checks", help="the check catalogue: id, title, markers, severity, runbook section, remediation")
    listing.add_argument("--marker", help="only the checks of this checklist (morning, evening, deploy, ...)")
    listing.add_argument("--json", action="store_true", help="as JSON, for other tools")
    listing.add_argument("--checks-dir", type=Path, default=Path("checks"))
    listing.set_defaults(run=checks_listing)
    covered = commands.add_parser("coverage", help="each runbook section and procedure, with the checks, remediations and experiments that cover it")
    covered.add_argument("--runbook", type=Path, help="the runbook (default: the one shipped with entmoot-ops)")
    covered.add_argument("--json", action="store_true", help="as JSON, for other tools")
    covered.add_argument("--checks-dir", type=Path, default=Path("checks"))
    covered.set_defaults(run=coverage_table)
    html = commands.add_parser("report", help="generate the Allure HTML report from reports/allure-results")
    html.add_argument("--results", type=Path, default=Path("reports/allure-results"))
    html.add_argument("--output", type=Path, default=Path("reports/allure-report"))
    html.add_argument("--tools", type=Path, default=Path("reports/.tools"), help="where allure-commandline is installed")
    html.add_argument("--history", type=Path, default=Path("reports/allure-history"),
                      help="the trend across runs: kept here between reports")
    html.add_argument("--checks-dir", type=Path, default=Path("checks"), help="for the runbook coverage table in the report")
    html.set_defaults(run=report)
    arguments = parser.parse_args(argv)
    try:
        return arguments.run(arguments)
    except BrokenPipeError:  # `entmoot-ops sandbox env | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except OpsError as exc:
        print(masker(f"entmoot-ops: {exc.with_fix()}"), file=sys.stderr)
        return 4 if isinstance(exc, (Refused, ConfigError)) else 2


if __name__ == "__main__":
    sys.exit(main())
