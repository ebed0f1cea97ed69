"""Procedures for the evening checklist and the deploy gate's release checks."""

from entmoot_ops.remediation import procedure

procedure("backup.investigate", title="Restore backup coverage", section="evening-checklist-end-of-business-day", steps=[
    "aws rds describe-events --source-identifier <instance> --source-type db-instance --duration 1440 (backup failures?)",
    "check BackupRetentionPeriod > 0 and the PreferredBackupWindow; a stuck backup blocks the next one",
    "take a manual snapshot now if the newest automated one is too old: aws rds create-db-snapshot",
])
procedure("security.review-activity", title="Review unusual CloudTrail activity", section="evening-checklist-end-of-business-day", steps=[
    "read each finding (attached evidence): who, what, when; confirm with the principal's owner",
    "root use or console login without MFA: treat as a security incident, page the Security Team",
    "trail stopped: aws cloudtrail start-logging at once; expected changes: add the principal or window to [cloudtrail]",
])
procedure("traffic.investigate-change", title="Explain a change in daily traffic", section="evening-checklist-end-of-business-day", steps=[
    "a drop: check DNS, the ALB's HTTPCode_ELB_5XX_Count, client releases; a spike: check for abuse and scaling headroom",
    "compare RequestCount by hour with last week to find when it started",
])
procedure("deploy.investigate-release", title="The running release is not the expected one", section="deploying-a-new-version", steps=[
    "did the pipeline register the task definition and update the service? aws ecs describe-services ... deployments",
    "is the image tag in ECR? aws ecr describe-images --repository-name entmoot-api --image-ids imageTag=<version>",
    "is the rollout still in progress? re-run the gate; if it failed, roll back (remediation ecs.rollback)",
])
