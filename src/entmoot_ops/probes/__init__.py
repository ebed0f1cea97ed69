"""Probes: small, typed, read-only measurements. Each takes clients and settings and returns a dataclass.

:func:`measuring` turns every client failure (refused, timed out, denied, malformed) into a
:class:`~entmoot_ops.errors.DependencyError` with one line, so a dead dependency is an *error* outcome.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import botocore.exceptions
from botocore.parsers import ResponseParserError
import psycopg
import redis as redis_library
import requests

from entmoot_ops import clients, iam
from entmoot_ops.errors import DependencyError, one_line
from entmoot_ops.secrets import masker


DENIED = re.compile(r"AccessDenied|UnauthorizedOperation|AuthorizationError|NotAuthorized|Forbidden", re.I)
_DENIED_ACTION = re.compile(r"perform:? ([a-z0-9-]+:[A-Za-z0-9]+)")
ENDPOINT_HINT = "check that aws.endpoint_url points at the AWS API, not a proxy or a web page"


@contextlib.contextmanager
def measuring(dependency: str) -> Iterator[None]:
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        raise aws_error(dependency, exc) from None
    except ResponseParserError as exc:
        raise DependencyError(dependency, f"unexpected answer from {dependency} {clients.current_action.get()}: not a valid AWS response "
                                          f"({_cause(exc)[:160]})", reachable=True,
                              fix=ENDPOINT_HINT) from None
    except (KeyError, IndexError, TypeError) as exc:  # a field the API documents is missing: the answer, not the code
        raise DependencyError(dependency, f"unexpected answer from {dependency} {clients.current_action.get()}: "
                                          f"{one_line(exc)}", reachable=True,
                              fix="the endpoint does not answer as AWS documents: check aws.endpoint_url and its version") from None
    except (TimeoutError, botocore.exceptions.BotoCoreError, psycopg.Error, redis_library.RedisError, requests.RequestException, OSError) as exc:
        detail = _cause(exc)
        # It answered, but no: a permission, a statement timeout, a bad command. Otherwise it did not answer.
        answered = isinstance(exc, (psycopg.errors.DatabaseError, redis_library.ResponseError)) and not isinstance(
            exc, psycopg.OperationalError)
        raise DependencyError(dependency, masker(f"{type(exc).__name__}: {detail}"), reachable=answered) from None


def aws_error(dependency: str, exc: botocore.exceptions.ClientError) -> DependencyError:
    """One line for an AWS error answer: a denial names the IAM action, throttling says so, anything else its code."""
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code") or "error"), " ".join(str(error.get("Message") or "").split())[:200]
    action = error.get("Action") or exc.operation_name
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if DENIED.search(code) or status == 403:
        named = _DENIED_ACTION.search(message)
        action = named.group(1) if named else action
        return DependencyError(dependency, f"denied {action} ({code})", reachable=True,
                               fix=f"grant {action} to the role this run uses: `entmoot-ops iam-policy {iam.mode_of(action)}` "
                                   "prints the policy")
    if error.get("Unexpected"):
        return DependencyError(dependency, f"unexpected answer from {dependency} {action}: {code}, {message or 'no body'}",
                               reachable=True, fix=ENDPOINT_HINT)
    if clients.throttled(code, message):
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        return DependencyError(dependency, f"throttled on {action} ({code}) after {attempts} attempts", reachable=True,
                               fix="AWS is rate-limiting this account: run fewer environments at once (-n), or later")
    return DependencyError(dependency, f"{code} on {action}: {message}".rstrip(": "), reachable=True)


def _cause(error: BaseException) -> str:
    """The first line of an error, and for an HTTP connection error its root cause rather than urllib3's wrapping
    ("Failed to resolve 'api.example.com'", "Connection refused")."""
    reason = getattr(error.args[0], "reason", None) if isinstance(error, requests.ConnectionError) and error.args else None
    text = str(reason).split("): ", 1)[-1] if reason is not None else str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
