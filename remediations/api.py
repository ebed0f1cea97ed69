"""API and ECS procedures from the runbook (carried out by a person; automated rollback comes with the deploy gate)."""

from entmoot_ops.remediation import procedure

procedure("api.investigate-health", title="Investigate a degraded /health", section="high-api-error-rate", steps=[
    "read the 'checks' of the /health body: which dependency is failing (database, redis)?",
    "aws ecs describe-services --cluster <cluster> --services entmoot-api --query 'services[0].deployments' (recent deploy?)",
    "a failing dependency: follow its check (replication, redis, connections); a bad deploy: ./scripts/rollback-deployment.sh <previous>",
])
procedure("api.investigate-errors", title="High API error rate: find the cause, roll back if a deploy caused it",
          section="alert-error-rate-high-1", steps=[
    "read the attached 'top error messages' evidence: one dominant message points at the cause",
    "check recent deployments (aws ecs describe-services ... deployments); a deploy in the window: roll back",
    "DatabaseError / pool timeouts: see postgres.connections; Redis errors: see redis.reachable",
])
procedure("ecs.stabilise-service", title="Get the ECS service back to a steady, completed deployment",
          section="rolling-back-a-deployment", steps=[
    "aws ecs describe-services ... --query 'services[0].{events: events[:10], deployments: deployments}'",
    "tasks failing to start: aws ecs list-tasks --desired-status STOPPED, then describe-tasks for stoppedReason",
    "a rollout that does not complete: roll back to the previous task-definition revision (runbook Rolling Back)",
    "running < desired with no rollout: check capacity and service events; scale within 3..20 only",
])
procedure("alarms.follow-alert-procedure", title="Follow the runbook procedure of each firing alarm",
          section="morning-checklist-start-of-business-day", steps=[
    "acknowledge in PagerDuty; open the alarm's runbook section (Alert Response Procedures)",
    "error-rate alarms: Alert: Error Rate High; latency: API Response Time High; RDS CPU: High Database CPU",
    "document in the incident ticket",
])
procedure("alarms.restore-metric-source", title="Restore the metric an INSUFFICIENT_DATA alarm watches",
          section="morning-checklist-start-of-business-day", steps=[
    "aws cloudwatch describe-alarms --alarm-names <name>: check namespace, metric and dimensions still exist",
    "aws cloudwatch list-metrics --namespace <ns> --metric-name <metric>: a renamed resource changes dimensions",
    "set TreatMissingData deliberately (breaching for heartbeat-style metrics)",
])
procedure("api.restore-auth", title="An API route answers without a credential: restore authentication",
          section="quick-reference", steps=[
    "treat it as a security incident: the API's data is readable by anyone who can reach it",
    "find the release that disabled auth (aws ecs describe-services ... deployments; its task definition's environment)",
    "roll back to the previous task-definition revision (runbook Rolling Back), or restore the auth setting and redeploy",
    "review the ALB access logs for requests without Authorization while auth was off",
])
