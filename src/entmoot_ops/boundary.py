"""The boundary with the outside: every failure of a call that leaves the process becomes one line.

AWS, PostgreSQL, Redis, the API and the hosts fail in more ways than their libraries' exception classes name: a
stock endpoint answers an action it lacks with an HTML page (botocore's ``ResponseParserError``, which is not a
``BotoCoreError``), an XML answer with an unexpected root raises ``KeyError`` inside botocore's parser, a field the
API documents is missing, a connection is reset mid-answer. :func:`outside_error` turns *any* of them into an
:class:`~entmoot_ops.errors.OpsError` naming the service, the operation and what to do, by what the call was for,
never by a list of exception classes at each call site. Two places apply it: :func:`measuring` around every
probe's reads, and :func:`guard_calls` on every AWS client, so that a call outside a probe (the preflight, a
secret, a remediation, a chaos action) is covered too.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
from botocore.parsers import ResponseParserError
import psycopg
import redis as redis_library
import requests

from entmoot_ops import iam
from entmoot_ops.aws_conventions import action_name
from entmoot_ops.errors import DependencyError, OpsError, one_line
from entmoot_ops.redaction import excerpt
from entmoot_ops.secrets import masker

DENIED = re.compile(r"AccessDenied|UnauthorizedOperation|AuthorizationError|NotAuthorized|Forbidden", re.I)
_DENIED_ACTION = re.compile(r"perform:? ([a-z0-9-]+:[A-Za-z0-9]+)")
ENDPOINT_HINT = "check that aws.endpoint_url points at the AWS API, not a proxy or a web page"
ANSWER_HINT = "the endpoint does not answer as AWS documents: check aws.endpoint_url and its version"
THROTTLED = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
                       "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
                       "BandwidthLimitExceeded", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
                       "EC2ThrottledException"})
# Library errors that mean the other side did not answer (or answered at the transport level): the dependency is
# unreachable, not wrong.
NO_ANSWER = (TimeoutError, botocore.exceptions.BotoCoreError, psycopg.Error, redis_library.RedisError, requests.RequestException,
             OSError)

# The AWS action this thread called last (``logs:StartQuery``): an answer whose shape a probe did not expect is
# reported against it.
current_action: contextvars.ContextVar[str] = contextvars.ContextVar("current_action", default="")


def throttled(code: str, message: str) -> bool:
    return code in THROTTLED or "rate exceeded" in message.lower()


def outside_error(dependency: str, error: BaseException, action: str | None = None) -> OpsError:
    """One line for any failure of a call to ``dependency``; ``action`` is the AWS action it called, if any."""
    if isinstance(error, OpsError):
        return error
    action = action or (current_action.get() if dependency.startswith("AWS") else "")
    if isinstance(error, botocore.exceptions.ClientError):
        return aws_error(dependency, error)
    if isinstance(error, NO_ANSWER):
        detail = _cause(error)
        # It answered, but no: a permission, a statement timeout, a bad command. Otherwise it did not answer.
        answered = isinstance(error, (psycopg.errors.DatabaseError, redis_library.ResponseError)) and not isinstance(
            error, psycopg.OperationalError)
        return DependencyError(dependency, masker(f"{type(error).__name__}: {detail}"), reachable=answered)
    on = f" {action}" if action else ""
    if isinstance(error, ResponseParserError):
        return DependencyError(dependency, f"unexpected answer from {dependency}{on}: not a valid AWS response "
                                           f"({masker(_cause(error))[:160]})", reachable=True, fix=ENDPOINT_HINT)
    # A field the API documents is missing, or of another type, or botocore's parser met a root it did not expect:
    # the answer, not the code.
    return DependencyError(dependency, f"unexpected answer from {dependency}{on}: {masker(one_line(error))[:200]}",
                           reachable=True, fix=ANSWER_HINT if action else None)


@contextlib.contextmanager
def measuring(dependency: str) -> Iterator[None]:
    """Around a probe's reads: whatever fails is an ERROR outcome of one line, never a traceback."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the boundary: every failure of the outside becomes one line
        raise outside_error(dependency, exc) from None


def guard_calls(client: Any, dependency: str) -> None:
    """Every call of this AWS client, wherever it is made, fails as one line. AWS's own error answers
    (``ClientError``) pass through unchanged: callers branch on their codes, and :func:`measuring` renders them."""
    call = client._make_api_call
    service = client.meta.service_model

    def guarded(operation_name: str, params: dict) -> Any:
        try:
            return call(operation_name, params)
        except (botocore.exceptions.ClientError, OpsError):
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary, as in measuring()
            raise outside_error(dependency, exc, action_name(service.signing_name, operation_name)) from None

    client._make_api_call = guarded


def is_denial(exc: botocore.exceptions.ClientError) -> bool:
    return bool(DENIED.search(str(exc.response.get("Error", {}).get("Code") or ""))
                or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 403)


def aws_error(dependency: str, exc: botocore.exceptions.ClientError) -> DependencyError:
    """One line for an AWS error answer: a denial names the IAM action, throttling says so, anything else its code."""
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code") or "error"), excerpt(" ".join(str(error.get("Message") or "").split()), 200)
    action = error.get("Action") or exc.operation_name
    if is_denial(exc):
        named = _DENIED_ACTION.search(message)
        action = named.group(1) if named else action
        return DependencyError(dependency, f"denied {action} ({code})", reachable=True,
                               fix=f"grant {action} to the role this run uses: `entmoot-ops iam-policy {iam.mode_of(action)}` "
                                   "prints the policy")
    if error.get("Unexpected"):
        return DependencyError(dependency, f"unexpected answer from {dependency} {action}: {code}, {message or 'no body'}",
                               reachable=True, fix=ENDPOINT_HINT)
    if throttled(code, message):
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        return DependencyError(dependency, f"throttled on {action} ({code}) after {attempts} attempts", reachable=True,
                               fix="AWS is rate-limiting this account: run fewer environments at once (-n), or later")
    return DependencyError(dependency, masker(f"{code} on {action}: {message}".rstrip(": ")), reachable=True)


def _cause(error: BaseException) -> str:
    """The first line of an error, and for an HTTP connection error its root cause rather than urllib3's wrapping
    ("Failed to resolve 'api.example.com'", "Connection refused")."""
    reason = getattr(error.args[0], "reason", None) if isinstance(error, requests.ConnectionError) and error.args else None
    text = str(reason).split("): ", 1)[-1] if reason is not None else str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
