"""ECS remediations: roll back to the previous task-definition revision; scale out by +2 within 3..20."""

from __future__ import annotations

from entmoot_ops import procedures
from entmoot_ops.errors import OpsError
from entmoot_ops.probes import ecs
from entmoot_ops.remediation import Change, RemediationContext, remediation


def _rollback_target(ctx: RemediationContext) -> tuple[procedures.Revision, procedures.Revision]:
    state = ecs.service_state(ctx.readonly)
    current = procedures.Revision.of(state.primary[0].task_definition if state.primary else state.task_definition)
    return current, procedures.previous_revision(ctx.readonly, current.arn)


def _rollback_plan(ctx: RemediationContext) -> list[str]:
    current, target = _rollback_target(ctx)
    settings = ctx.env.ecs
    return [f"aws ecs update-service --cluster {settings.cluster} --service {settings.service} --task-definition {target} "
            f"(from {current})",
            f"wait until the rollback's rollout is stable (deadline {ctx.env.deploy.rollout_timeout_seconds:g} s), "
            "then re-run the failed gate check; the gate passes on the previous version with --expected-version <previous>"]


def _rollback(ctx: RemediationContext) -> list[Change]:
    current, target = _rollback_target(ctx)
    procedures.roll_back(ctx.writable, target)
    wait = procedures.wait_stable(ctx.readonly)
    if not wait.state.stable:
        raise OpsError(f"rolled back to {target}, but not stable after {wait.waited_seconds:g} s: {wait.state.describe()}")
    versions = {revision: _version(ctx, revision) for revision in (current, target)}
    return [Change("ecs:UpdateService taskDefinition", f"{current}{versions[current]}",
                   f"{target}{versions[target]} (stable after {wait.waited_seconds:g} s)",
                   summary=f"release rolled back from {current}{versions[current]} to {target}{versions[target]}")]


def _version(ctx: RemediationContext, revision: procedures.Revision) -> str:
    """" (image 1.6.0)": the version a revision runs, as the gate's --expected-version names it; best effort."""
    try:
        tag = ecs.release(ctx.readonly, revision.arn).tag
    except OpsError:
        return ""
    return f" (image {tag})" if tag else ""


def _scale_target(ctx: RemediationContext) -> tuple[int, int]:
    settings = ctx.env.ecs
    current = ecs.service_state(ctx.readonly).desired
    return current, procedures.scaled_count(current, minimum=settings.min_count, maximum=settings.max_count,
                                         step=settings.scale_out_step)


def _scale_plan(ctx: RemediationContext) -> list[str]:
    current, target = _scale_target(ctx)
    settings = ctx.env.ecs
    if target <= current:
        return [f"already at {current} tasks, the maximum {settings.max_count}: scale vertically or find the slow "
                "endpoint (runbook API Response Time High, solutions 2-3)"]
    return [f"aws ecs update-service --cluster {settings.cluster} --service {settings.service} --desired-count {target} "
            f"(from {current}; bounds {settings.min_count}..{settings.max_count})", "wait until running == desired"]


def _scale_out(ctx: RemediationContext) -> list[Change]:
    current, target = _scale_target(ctx)
    if target <= current:
        raise OpsError(f"already at {current} tasks, the configured maximum: not scaling")
    procedures.set_desired_count(ctx.writable, target)
    wait = procedures.wait_stable(ctx.readonly)
    return [Change("ecs:UpdateService desiredCount", current, f"{target} (running {wait.state.running} after {wait.waited_seconds:g} s)")]


remediation("ecs.rollback", title="Roll back to the previous task-definition revision", section="rolling-back-a-deployment",
            plan=_rollback_plan, act=_rollback)
remediation("ecs.scale-out", title="Scale the API out by +2 tasks (within 3..20)",
            section="horizontal-scaling-add-more-instances", plan=_scale_plan, act=_scale_out)
