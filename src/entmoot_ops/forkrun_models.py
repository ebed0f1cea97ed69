"""Imported by entmoot_ops.forkrun's fork server only: botocore's models of the services the checks, remediations
and experiments call, parsed there once. Each forked run starts with them parsed; parsing them was a quarter of a
forked morning run's CPU (0.48 s -> 0.34 s, medians of 5). A service missing here is parsed by each run that calls
it, as before. EC2's model is left out: it alone is as large as the others together, for one weekly check
(postgres.pool-size).
"""

from entmoot_ops.clients import aws_session

aws_session.parse_models(("ecs", "rds", "elasticache", "cloudwatch", "elbv2", "logs", "sts", "iam", "cloudtrail", "ecr",
                      "secretsmanager", "acm", "fis"))
