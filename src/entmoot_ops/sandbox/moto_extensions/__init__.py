"""What moto 5.2 lacks and the checks need, taught to it in-process (the sandbox's moto only).

- CloudWatch ``GetMetricStatistics`` with ``ExtendedStatistics`` (pNN): moto ignores them. Percentiles are
  computed by nearest rank from the raw datapoints moto stores (``Values``/``Counts`` are stored expanded).
- RDS ``LatestRestorableTime``: moto always answers "now"; the sandbox can hold it back (a PITR lag fault).
- CloudTrail ``LookupEvents``: not implemented; served from the sandbox's event store, newest first, with
  ``LookupAttributes`` (one attribute, as AWS allows), ``StartTime``/``EndTime`` and ``MaxResults``/``NextToken``.
- RDS ``ModifyDBInstance`` of ``DBInstanceClass`` without ``ApplyImmediately``: moto applies it at once; AWS waits
  for the maintenance window and shows it in ``PendingModifiedValues``, and so does the sandbox.
- ElastiCache ``IncreaseReplicaCount``: not implemented; adds member clusters to the replication group (the
  sandbox's one real Redis stands for all of them).
- ECS ``ListTasks`` of a service and ``StopTask`` of its tasks: moto runs no service tasks (it has no container
  instances). The sandbox's service has one task ARN per running task; stopping one lowers the running count,
  and ECS's scheduler replaces it only after ``REPLACE_AFTER_SECONDS`` (real ECS takes a minute or so).
- RDS ``RebootDBInstance`` and ElastiCache ``TestFailover`` do nothing in moto: the sandbox restarts its real
  primary (status ``rebooting`` meanwhile) or drops its real Redis's client connections, as a failover does.
- FIS: moto moves an experiment through its states but runs none of its actions. The sandbox runs
  ``aws:ecs:stop-task`` on its own service's tasks, and hands ``aws:ecs:task-network-latency`` (to the RDS or
  ElastiCache endpoint named in ``sources``), ``aws:rds:reboot-db-instances``,
  ``aws:elasticache:replicationgroup-interrupt-az-power`` and ``aws:fis:wait`` to :data:`on_fis_action`, which
  makes them faults of its real servers. An experiment with a timed action runs for its ``duration`` (ISO 8601),
  then completes; StopExperiment, or a stop condition's alarm entering ALARM, stops it first. Each ends its faults.
  An action the sandbox cannot run fails the experiment with the reason, as FIS fails one it cannot start.
- CloudWatch ``GetMetricData`` and ``GetMetricStatistics``: moto's answer is right but scans every stored datapoint
  (once per period for GetMetricData: 0.75 s for three series over an hour of 10 s periods beside eight days of
  history). Each query is answered by moto's own code over the datapoints of its metric alone, kept in an index
  that follows what is stored: the same answer, many times faster. And with CloudWatch's dimension matching: exactly
  the query's set, in any order (moto takes any datapoint holding the query's dimensions, and its ordering of
  dimensions is broken). And with its delay (:data:`visibility_delay`): moto shows a datapoint the moment it is
  written, AWS one to three minutes later, so that the latest period of a query is partial or empty. And with its
  periods where AWS puts them (:func:`aws_period_start`), not where moto's first datapoint falls.
- CloudWatch Logs filter patterns (JSON and space-delimited) and Logs Insights ``filter``/``stats``/``sort``: moto
  matches every event or ignores the clause; :mod:`entmoot_ops.sandbox.log_queries` answers them as AWS does.
- IAM enforcement (:func:`enforce_iam`): moto authorises CloudWatch as ``monitoring:Action`` (its signing name),
  where IAM says ``cloudwatch:Action``; and it answers a JSON-protocol client's denial with an XML body, where AWS
  answers ``AccessDeniedException`` in JSON. moto authorises every request against the resource ``*``: a statement
  scoped to ARNs counts as matching, so the sandbox enforces actions and AWS alone enforces the ARNs. Nor does it
  recompute every signature right (REST requests with a query string): the key names the user, botocore signs.
- IAM ``SimulatePrincipalPolicy``: not implemented; answered with moto's own policy evaluation (resource ``*``).
- Logs Insights: moto answers a query at once. Its status follows AWS's course here (Scheduled, Running, then
  Complete, or Failed under a fault); at most 10,000 rows and 30 queries running at once; StopQuery cancels.
- ACM ``DescribeCertificate``: moto writes ``Serial`` as a decimal number, AWS as hex pairs joined by colons
  (``0a:1b:...``), the form ``openssl x509 -serial`` and the suite's TLS checks compare.
- Throttling: moto never throttles. :data:`throttled` makes a service answer ``Rate exceeded`` (``Throttling`` to
  query-protocol clients, ``ThrottlingException`` to JSON ones) for a number of calls.
"""

from __future__ import annotations

import threading

from entmoot_ops.sandbox.moto_extensions import cloudtrail, cloudwatch, fis, iam, logs, services

_installed = False
_lock = threading.Lock()


def install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        for extension in (cloudwatch, services, fis, cloudtrail, logs, iam):
            extension.install()
        _installed = True
