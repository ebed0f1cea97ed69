"""Optimisation job queue procedure."""

from entmoot_ops.remediation import procedure

procedure("jobs.restart-workers", title="Unstick the optimisation job queue", section="morning-checklist-start-of-business-day", steps=[
    "are workers running? aws ecs describe-services (worker service) and its recent events",
    "stuck 'running' jobs: SELECT id, started_at FROM optimization_jobs WHERE status = 'running' ORDER BY started_at",
    "restart the workers (aws ecs update-service --force-new-deployment); re-queue jobs stuck after the restart",
])
