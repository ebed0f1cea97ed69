"""Probes: small, typed, read-only measurements. Each takes clients and settings and returns a dataclass.

:func:`measuring` turns every client failure (refused, timed out, denied, malformed) into a
:class:`~entmoot_ops.errors.DependencyError` with one line, so a dead dependency is an *error* outcome.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import botocore.exceptions
import psycopg
import redis as redis_library
import requests

from entmoot_ops.errors import DependencyError
from entmoot_ops.secrets import masker


@contextlib.contextmanager
def measuring(dependency: str) -> Iterator[None]:
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise DependencyError(dependency, f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip(),
                              reachable=True) from None
    except (TimeoutError, botocore.exceptions.BotoCoreError, psycopg.Error, redis_library.RedisError, requests.RequestException, OSError) as exc:
        detail = _cause(exc)
        # It answered, but no: a permission, a statement timeout, a bad command. Otherwise it did not answer.
        answered = isinstance(exc, (psycopg.errors.DatabaseError, redis_library.ResponseError)) and not isinstance(
            exc, psycopg.OperationalError)
        raise DependencyError(dependency, masker(f"{type(exc).__name__}: {detail}"), reachable=answered) from None


def _cause(error: BaseException) -> str:
    """The first line of an error, and for an HTTP connection error its root cause rather than urllib3's wrapping
    ("Failed to resolve 'api.example.com'", "Connection refused")."""
    reason = getattr(error.args[0], "reason", None) if isinstance(error, requests.ConnectionError) and error.args else None
    text = str(reason).split("): ", 1)[-1] if reason is not None else str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__
