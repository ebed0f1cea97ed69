"""Preflight: before any check, each environment's references and AWS credentials are resolved once.

A missing variable, a Secrets Manager secret that cannot be read, or no AWS credentials is said once, in one
line per environment naming each key and what to set. The checks that need it then fail at once as ERROR
with a short pointer to that line, instead of repeating the same message (or worse, a traceback) per check.
Secrets Manager ARNs are read here once per run; pytest-xdist workers receive the result, not a task to redo.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions
from pydantic import BaseModel

from entmoot_ops.boundary import measuring, outside_error
from entmoot_ops.check import Unavailable, best_effort
from entmoot_ops.clients import Clients
from entmoot_ops.config import Environment
from entmoot_ops.errors import ConfigError, OpsError
from entmoot_ops.secrets import REFERENCE_PREFIXES, masker, password_of, references

CREDENTIALS = "aws.credentials"
# Keys whose value is an address or a path, not a secret: only a password inside them is masked, so messages stay
# readable.
ENDPOINT_KEYS = ("url", "endpoint_url", "endpoints", "oncall", "ssh_config", "ssh_identity_file", "config_file", "hba_file",
                 "ca_file")
REMEDIATION_ONLY = ("postgres.admin_dsn",)
# A notification channel's secret, the history store's: no check needs them. Unresolved, they fail no preflight; that
# channel alone is skipped when the run ends, the run is not remembered, each in one line (notify, history).
CHANNEL_KEYS = ("notify.", "history.")
# Hosts a template or a runbook snippet carries until someone fills in the real one: never asked, not even by DNS.
PLACEHOLDER_HOST = re.compile(r"(^|\.)(example\.(com|org|net)|yourdomain\.com|your-?domain\.[a-z]+|example|invalid|test)$"
                              r"|x{6,}|<[^>]*>|\{\{", re.I)


class PreflightFailed(ConfigError):
    def __init__(self, message: str):
        super().__init__(message, fix="")
        self.fix = ""


@dataclass(frozen=True)
class Problem:
    key: str
    detail: str
    fix: str

    def describe(self) -> str:
        return f"{self.key}: {self.detail} -> {self.fix}"


@dataclass
class Preflight:
    env: str
    resolved: dict[str, str] = field(default_factory=dict)  # reference -> value
    problems: dict[str, Problem] = field(default_factory=dict)  # reference (or CREDENTIALS) -> problem
    fatal: Problem | None = None  # nothing in this environment can be measured
    credentials: str | None = None  # where boto3's chain found them
    masked: list[str] = field(default_factory=list)  # what every output must mask, in every process of the run
    # The actions this run's mode needs that IAM's simulator says the caller lacks (empty where it may not ask).
    iam_denied: list[str] = field(default_factory=list)
    iam_unasked: str = ""  # why the simulator could not be asked, where it could not

    @property
    def ok(self) -> bool:
        return self.fatal is None and not self.failures

    @property
    def failures(self) -> list[Problem]:
        """The problems that cost checks: all but a notification channel's and the history store's."""
        return [p for p in self.problems.values() if not p.key.startswith(CHANNEL_KEYS)]

    def raise_for(self, reference: str) -> None:
        """An ERROR pointing at the preflight line, when ``reference`` (or the whole environment) failed there."""
        problem = self.fatal or self.problems.get(reference)
        if problem is not None:  # the fix is on the preflight line: not repeated on every check
            raise PreflightFailed(f"preflight [{self.env}] failed for {problem.key}: see that line")

    def line(self) -> str:
        if self.fatal is not None:
            return f"preflight [{self.env}] FAILED: {self.fatal.describe()}"
        if self.failures:  # one problem a line: each names its key and what to do
            return f"preflight [{self.env}] FAILED ({len(self.failures)}):" + "".join(f"\n  - {p.describe()}" for p in self.failures)
        lacking = (f"; IAM denies {', '.join(self.iam_denied)}: the checks that call them will err "
                   f"(`entmoot-ops iam-policy MODE` prints each mode's policy)") if self.iam_denied else ""
        unasked = (f"; IAM's policy simulator not asked ({self.iam_unasked.removeprefix('unavailable: ')}): a check that is "
                   "denied says so itself") if self.iam_unasked else ""
        return f"preflight [{self.env}] ok: {len(self.resolved)} references resolved; AWS credentials: {self.credentials}{lacking}{unasked}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preflight:
        problems = {ref: Problem(**p) for ref, p in data["problems"].items()}
        fatal = Problem(**data["fatal"]) if data["fatal"] else None
        found = cls(data["env"], dict(data["resolved"]), problems, fatal, data["credentials"], list(data["masked"]),
                    list(data["iam_denied"]), data["iam_unasked"])
        found.remember_secrets()
        return found

    def remember_secrets(self) -> None:
        for value in self.masked:
            masker.add(value)


def run(env: Environment, *, remediate: bool, mode: str = "check", asked: dict | None = None) -> Preflight:
    """The whole preflight: :func:`resolve`, then :func:`advise`."""
    result = resolve(env, remediate=remediate)
    advise(result, env, mode=mode, asked=asked)
    return result


def resolve(env: Environment, *, remediate: bool) -> Preflight:
    """What the checks need before they measure: every reference resolved (variables, credentials, then Secrets
    Manager), or a problem each that points the checks needing it at the preflight's line."""
    result = Preflight(env.name)
    clients = Clients(env)
    wanted = [(k, r) for k, r in references(env) if remediate or k not in REMEDIATION_ONLY]
    variables = [(k, r) for k, r in wanted if r.startswith("env:")]
    _resolve(clients, variables, result)
    # After the variables, which may hold the keys; before the Secrets Manager reads, which need them.
    try:
        result.credentials = clients.aws_credentials()
    except Exception as exc:  # noqa: BLE001 - a credential provider (SSO, credential_process) may fail in any way
        problem = outside_error("AWS credentials", exc)
        result.problems[CREDENTIALS] = Problem(CREDENTIALS, str(problem).split(": ", 1)[-1], problem.fix)
    _placeholders(env, result)
    arns = [(k, r) for k, r in wanted if not r.startswith("env:")]
    if CREDENTIALS in result.problems:
        for key, reference in arns:
            result.problems[reference] = Problem(key, "a Secrets Manager reference needs AWS credentials", f"see {CREDENTIALS}")
    else:
        _resolve(clients, arns, result)
    return result


def advise(result: Preflight, env: Environment, *, mode: str = "check", asked: dict | None = None) -> None:
    """IAM's advice on the preflight's line: the actions this mode needs that the caller lacks. It serves that line
    only, so checks measure while it is asked. ``asked``: the answers of AWS questions already asked in this run,
    shared by the run's environments (several environments with the same credentials and endpoint ask IAM the same
    question)."""
    if CREDENTIALS in result.problems or result.fatal is not None:
        return
    clients = Clients(env, preflight=result)
    denied = best_effort("IAM's policy simulator", lambda: _iam_denials(clients, env, mode, {} if asked is None else asked))
    # A role that may not ask, or an endpoint that does not answer (a stock moto server lacks the simulator), costs no
    # verdict; the checks that are denied say so themselves.
    result.iam_denied = [] if isinstance(denied, Unavailable) else denied
    result.iam_unasked = str(denied) if isinstance(denied, Unavailable) else ""


def _iam_denials(clients: Any, env: Environment, mode: str, asked: dict) -> list[str]:
    """Ask IAM's policy simulator which of the mode's actions the caller lacks, on the resources they are called
    on."""
    from entmoot_ops import iam

    denied = []
    with measuring("AWS IAM"):
        sts, simulator = clients.aws("sts"), clients.aws("iam")  # shared by environments with the same access
        if sts not in asked:
            asked[sts] = sts.get_caller_identity()
        caller = asked[sts]
        scoped = env.model_copy(update={"aws": env.aws.model_copy(update={"account_id": caller["Account"]})})
        needed = iam.needed(mode, scoped)
        question = (simulator, _principal(caller["Arn"]), tuple(sorted(needed)),
                    tuple(sorted({r for resources in needed.values() for r in resources})))
        if question not in asked:
            try:
                asked[question] = simulator.simulate_principal_policy(PolicySourceArn=question[1], ActionNames=list(question[2]),
                                                                      ResourceArns=list(question[3]))
            except botocore.exceptions.ClientError as exc:
                # IAM's own answer (a denial: the least-privilege policies do not grant it; a principal it does not
                # know): nothing to advise. An answer that is not IAM's is said on the preflight's line.
                if not exc.response.get("Error", {}).get("Unexpected"):
                    return []
                raise
        for result in asked[question]["EvaluationResults"]:
            own = needed.get(result["EvalActionName"], set())
            per_resource = [r["EvalResourceDecision"] for r in result.get("ResourceSpecificResults", []) if r["EvalResourceName"] in own]
            if any(decision != "allowed" for decision in per_resource or [result["EvalDecision"]]):
                denied.append(result["EvalActionName"])
    return sorted(denied)


def _principal(arn: str) -> str:
    """The IAM principal behind a caller: an assumed role's session is simulated as its role."""
    found = re.match(r"arn:([^:]+):sts::(\d+):assumed-role/([^/]+)/", arn)
    return f"arn:{found[1]}:iam::{found[2]}:role/{found[3]}" if found else arn


def _placeholders(env: Environment, result: Preflight) -> None:
    """Endpoints still naming a template's placeholder host: each is a problem, keyed by what the clients ask for
    (the literal, or the reference it was resolved from), so no check sends a packet, or a DNS query, there."""
    written = [(key, value) for key, value in _endpoints(env) if not value.startswith(REFERENCE_PREFIXES)]
    resolved = [(key, result.resolved[ref]) for key, ref in references(env) if ref in result.resolved]
    for key, value in written + resolved:
        host = _host(value)
        if host and PLACEHOLDER_HOST.search(host):
            reference = next((ref for k, ref in references(env) if k == key), value)
            result.problems[reference] = Problem(key, f"{host} is a placeholder host", "write the environment's real endpoint")


def _endpoints(model: BaseModel, prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, BaseModel):
                found += _endpoints(item, f"{prefix}{name}.")
            elif name in ENDPOINT_KEYS and isinstance(item, str):
                found.append((f"{prefix}{name}", item))
    return found


def _host(value: str) -> str | None:
    """The host of a URL or a libpq DSN (key=value or postgresql://)."""
    if "://" in value:
        return urlsplit(value).hostname
    found = re.search(r"(?:^|\s)host=(\S+)", value)
    return found.group(1) if found else None


def _resolve(clients: Any, wanted: list[tuple[str, str]], result: Preflight) -> None:
    for key, reference in wanted:
        if reference in result.resolved or reference in result.problems:
            continue
        try:
            endpoint = key.rsplit(".", 1)[-1] in ENDPOINT_KEYS
            value = (clients.endpoint if endpoint else clients.secret)(reference, what=key)
        except OpsError as exc:
            variable = reference[4:] if reference.startswith("env:") else None
            result.problems[reference] = Problem(key, f"{variable} is not set" if variable else masker(str(exc)),
                                                 f"export {variable}" if variable else exc.fix)
            continue
        result.resolved[reference] = value
        result.masked += [password_of(value)] if endpoint else [value, password_of(value)]
    result.masked = [m for m in dict.fromkeys(result.masked) if m]
    result.remember_secrets()
