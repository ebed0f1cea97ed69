"""``entmoot-ops scale`` and ``entmoot-ops iam-policy``: acting on an environment (the runbook's scale-out), and the
IAM policy each mode of the suite needs."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from entmoot_ops.cli.common import Refused, declared_policies, environment_of
from entmoot_ops.errors import OpsError


def iam_policy(arguments: argparse.Namespace) -> int:
    """The least-privilege IAM policy of a mode, from the actions the code declares (entmoot_ops.iam)."""
    env = environment_of(arguments)
    print(json.dumps(declared_policies(env)[arguments.mode], indent=2))
    return 0


def scale(arguments: argparse.Namespace) -> int:
    """Runbook Scaling API Servers / Scaling Out, bounded to ecs.min_count..max_count, audited, verified."""
    from entmoot_ops import preflight, procedures
    from entmoot_ops.clients import Clients
    from entmoot_ops.probes import ecs
    from entmoot_ops.remediation import AuditLog

    env = environment_of(arguments)
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
    target = arguments.to if arguments.to is not None else procedures.scaled_count(
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
    procedures.set_desired_count(writable, target)
    wait = procedures.wait_stable(readonly)
    AuditLog(arguments.audit_log).write(env=env.name, check_id="(manual)", remediation_id="ecs.scale", event="acted",
                                        changes=[{"action": "ecs:UpdateService desiredCount", "before": current, "after": target}],
                                        stable=wait.state.stable)
    print(f"{tag} scaled {settings.service} from {current} to {target}; running {wait.state.running}/{wait.state.desired} "
          f"after {wait.waited_seconds:g} s{'' if wait.state.stable else ' (NOT stable: ' + wait.state.describe() + ')'}")
    return 0 if wait.state.stable else 1


def add_commands(commands: argparse._SubParsersAction) -> None:
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
