"""The IAM actions the suite calls, declared where it calls them, and the least-privilege policy of each mode.

A function that calls AWS is decorated with ``@needs(...)``: its actions, the mode that calls them, and the
resources they act on. ``policy(mode, env)`` gathers every declaration of that mode (and of check mode, which every
mode runs too) into a policy scoped to the environment's ARNs wherever AWS authorises the action per resource.
``entmoot-ops iam-policy MODE --env NAME`` prints it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from entmoot_ops.config import Environment
from entmoot_ops.secrets import references

Mode = Literal["check", "remediate", "chaos", "load"]
MODES: tuple[Mode, ...] = ("check", "remediate", "chaos", "load")
F = TypeVar("F", bound=Callable)

# Resources an action is authorised on, from the environment: AWS's ARN formats per service. An action that AWS
# authorises only on "*" (List*, Describe* of whole services, metric reads) names ANY.
Resources = Callable[[Environment], list[str]]


def _arn(env: Environment, service: str, resource: str) -> str:
    account = env.aws.account_id or "*"
    return f"arn:aws:{service}:{env.aws.region}:{account}:{resource}"


def ANY(env: Environment) -> list[str]:
    return ["*"]


def ECS_SERVICE(env: Environment) -> list[str]:
    return [_arn(env, "ecs", f"service/{env.ecs.cluster}/{env.ecs.service}")]


def ECS_TASKS(env: Environment) -> list[str]:
    return [_arn(env, "ecs", f"task/{env.ecs.cluster}/*")]


def ECR_REPOSITORIES(env: Environment) -> list[str]:
    return [_arn(env, "ecr", "repository/*")]


def DB_INSTANCES(env: Environment) -> list[str]:
    return [_arn(env, "rds", f"db:{name}") for name in dict.fromkeys((env.rds.instance, *env.postgres.replica_instances))]


def DB_SNAPSHOTS(env: Environment) -> list[str]:
    return [*DB_INSTANCES(env), _arn(env, "rds", "snapshot:*")]


def ALARMS(env: Environment) -> list[str]:
    return [_arn(env, "cloudwatch", "alarm:*")]


def LOG_GROUP(env: Environment) -> list[str]:
    return [_arn(env, "logs", f"log-group:{env.logs.group}:*")] if env.logs.group else []


def REPLICATION_GROUP(env: Environment) -> list[str]:
    group = env.redis.replication_group
    return [_arn(env, "elasticache", f"replicationgroup:{group}"), _arn(env, "elasticache", f"cluster:{group}-*")] if group else []


def SECRETS(env: Environment) -> list[str]:
    """The Secrets Manager secrets the environment file references (a secret's ARN ends in a random suffix)."""
    arns = sorted({reference for _, reference in references(env) if reference.startswith("arn:aws:secretsmanager:")})
    return [arn if arn.count(":") > 6 else f"{arn}-*" for arn in arns]


def CERTIFICATES(env: Environment) -> list[str]:
    return [_arn(env, "acm", "certificate/*")]


def FIS_TEMPLATES(env: Environment) -> list[str]:
    return [_arn(env, "fis", "experiment-template/*"), _arn(env, "fis", "experiment/*")]


def FIS_EXPERIMENTS(env: Environment) -> list[str]:
    return [_arn(env, "fis", "experiment/*")]


@dataclass(frozen=True)
class Need:
    where: str  # the function that calls them, module.qualname
    mode: Mode
    actions: tuple[str, ...]
    resources: Resources


DECLARED: dict[str, Need] = {}
# Every module that calls AWS: importing them registers their declarations.
CALLERS = ("entmoot_ops.clients", "entmoot_ops.probes.alb", "entmoot_ops.probes.cloudtrail", "entmoot_ops.probes.cloudwatch",
           "entmoot_ops.probes.ecs", "entmoot_ops.probes.rds", "entmoot_ops.probes.redis", "entmoot_ops.probes.tls",
           "entmoot_ops.logsearch.cloudwatch",
           "entmoot_ops.procedures", "entmoot_ops.chaos.actions", "remediations")


def needs(*actions: str, mode: Mode = "check", resources: Resources = ANY) -> Callable[[F], F]:
    """Declare the IAM actions the decorated function calls (``logs:StartQuery``), on which resources."""

    def declare(function: F) -> F:
        where = f"{function.__module__}.{function.__qualname__}"
        key = f"{where}:{mode}:{resources.__name__}"
        DECLARED[key] = Need(where, mode, tuple(actions), resources)
        return function

    return declare


def declarations(*, with_project: bool = True) -> list[Need]:
    """Every declaration; ``with_project=False``: without the project's remediations where they cannot be found."""
    for module in CALLERS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            if with_project or module != "remediations":
                raise
    return list(DECLARED.values())


def actions(mode: Mode) -> set[str]:
    """Every action a run of this mode may call: its own and check mode's."""
    return {a for need in declarations() if need.mode in ("check", mode) for a in need.actions}


def needed(mode: Mode, env: Environment, *, with_project: bool = False) -> dict[str, set[str]]:
    """Each action a run of this mode may call, with the resources it is called on."""
    found: dict[str, set[str]] = {}
    for need in declarations(with_project=with_project):
        resources = need.resources(env) if need.mode in ("check", mode) else []
        for action in need.actions if resources else ():  # none: a feature the environment does not configure
            found.setdefault(action, set()).update(resources)
    return found


def mode_of(action: str) -> Mode:
    """The least mode whose policy grants the action: a denial's line names the command that prints it. Only the
    declarations already loaded are read: the code that was denied has declared its actions."""
    return next((m for m in MODES if any(action in n.actions for n in DECLARED.values() if n.mode == m)), "check")


def policy(mode: Mode, env: Environment) -> dict:
    """The least-privilege policy of a mode for an environment: one statement per set of resources."""
    by_resources: dict[tuple[str, ...], set[str]] = {}
    for action, resources in needed(mode, env, with_project=True).items():
        # An action that some declaration needs on every resource is granted on "*" alone.
        by_resources.setdefault(("*",) if "*" in resources else tuple(sorted(resources)), set()).add(action)
    statements: list[dict] = []
    for resources, granted in sorted(by_resources.items(), key=lambda item: (item[0] != ("*",), item[0])):
        sid = _sid(resources)
        taken = sum(1 for s in statements if s["Sid"].rstrip("0123456789") == sid)
        statements.append({"Sid": f"{sid}{taken + 1}" if taken else sid, "Effect": "Allow", "Action": sorted(granted),
                           "Resource": resources[0] if len(resources) == 1 else list(resources)})
    return {"Version": "2012-10-17", "Statement": statements}


def policies(env: Environment) -> dict[Mode, dict]:
    return {mode: policy(mode, env) for mode in MODES}


def _sid(resources: tuple[str, ...]) -> str:
    if resources == ("*",):
        return "Anywhere"
    service, kind = resources[0].split(":")[2], resources[0].split(":")[5].split("/")[0]
    return "".join(word.capitalize() for word in f"{service}-{kind}".replace("_", "-").split("-"))
