"""The AWS client's guards: check mode refuses what is not a read, an error body botocore could not read is named,
and every call goes through the boundary and says which dependency and IAM action it touched."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.loaders
import botocore.parsers
import botocore.session
import botocore.utils

from entmoot_ops.breaker import breaker
from entmoot_ops.check import calling, touching
from entmoot_ops import boundary
from entmoot_ops.aws_conventions import action_name
from entmoot_ops.errors import DependencyError, ReadOnlyViolation


# A Logs Insights query is a read that runs on the server: starting and stopping one changes no resource.
# IAM's policy simulator reads what a principal may do.
READ_ONLY_AWS = re.compile(r"^(Describe|Get|List|Lookup|Filter|BatchGet|StartQuery$|StopQuery$|SimulatePrincipalPolicy$)")


def refuse_writes(event_name: str, **_: Any) -> None:
    operation = event_name.rsplit(".", 1)[-1]
    if not READ_ONLY_AWS.match(operation):
        raise ReadOnlyViolation(f"check mode refused AWS {event_name.split('.')[1]}:{operation} (not a read)")


# Calls that got no answer open the endpoint's circuit; these are answers (a wrong password, a TLS mismatch).
AWS_NO_ANSWER = (botocore.exceptions.ConnectionError, botocore.exceptions.ReadTimeoutError,
                 botocore.exceptions.ConnectionClosedError)


_ERROR_CODE = re.compile(r"<Code>\s*([^<\s]+)\s*</Code>")


_ERROR_MESSAGE = re.compile(r"<Message>\s*([^<]*?)\s*</Message>", re.S)


def iam_action(operation_model: Any) -> str:
    """``logs:StartQuery``: the IAM action an AWS operation is authorised as."""
    return action_name(operation_model.service_model.signing_name, operation_model.name)


def _error_from_body(body: bytes) -> tuple[str, str]:
    """Code and message of an error body in whatever shape it came: XML (query protocols, and moto's denials
    even to JSON clients), JSON (``__type``/``code``, ``message``), or neither (a proxy's HTML, nothing)."""
    text = body.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        if isinstance(data, dict):
            code = str(data.get("__type") or data.get("code") or data.get("Code") or "").rsplit("#", 1)[-1]
            return code, str(data.get("message") or data.get("Message") or "")
    code, message = _ERROR_CODE.search(text), _ERROR_MESSAGE.search(text)
    if code or message:
        return (code.group(1) if code else ""), (" ".join(message.group(1).split()) if message else "")
    if text.startswith("<"):
        return "", f"not an AWS error body ({'HTML' if '<html' in text[:200].lower() else 'XML'} of {len(text)} characters)"
    return "", ""


def normalise_error(http_response: Any, parsed: dict, model: Any, **_: Any) -> None:
    """Give every error answer a code, a message and the IAM action, whatever protocol its body came in: botocore
    reports an XML denial to a JSON client as code ``403`` with the raw XML as its message."""
    status = http_response.status_code
    if status < 300:
        return
    error = parsed.setdefault("Error", {})
    code = str(error.get("Code") or "")
    if not code or code.isdigit() or str(error.get("Message", "")).lstrip().startswith("<"):
        found_code, found_message = _error_from_body(http_response.content or b"")
        error["Code"] = found_code or ("AccessDenied" if status == 403 else f"HTTP {status}")
        error["Message"] = found_message
        error["Unexpected"] = not found_code and status != 403  # not an AWS error at all: a proxy, a web page
    error["Action"] = iam_action(model)


# A CloudWatch metric depends on what it measures: the load balancer's on the API's traffic, a node's on Redis...
NAMESPACE_DEPENDENCY = {"AWS/ApplicationELB": "traffic", "AWS/ECS": "api", "AWS/RDS": "primary", "AWS/ElastiCache": "redis"}


def touching_namespaces(params: dict, **_: Any) -> None:
    queries = params.get("MetricDataQueries") or []
    namespaces = {params.get("Namespace")} | {q.get("MetricStat", {}).get("Metric", {}).get("Namespace") for q in queries}
    touching(*(NAMESPACE_DEPENDENCY[n] for n in namespaces if n in NAMESPACE_DEPENDENCY))


def guard_aws(client: Any, dependency: str) -> None:
    endpoint = urlsplit(client.meta.endpoint_url).netloc
    # AWS throttles per API, and several APIs may share one endpoint (a proxy, the sandbox): its own circuit.
    api = f"{endpoint} {client.meta.service_model.signing_name}"

    def before(context: dict, model: Any, **_: Any) -> None:
        calling(iam_action(model))
        breaker.guard(endpoint, dependency)
        breaker.guard(api, dependency)
        context["entmoot_started"] = time.monotonic()
        boundary.current_action.set(iam_action(model))

    def failed(exception: BaseException, context: dict, **_: Any) -> None:
        if isinstance(exception, AWS_NO_ANSWER):
            breaker.trip(endpoint, dependency, time.monotonic() - context.get("entmoot_started", time.monotonic()),
                         type(exception).__name__)

    def answered(parsed: dict, context: dict, **_: Any) -> None:
        breaker.close(endpoint)
        error = parsed.get("Error") or {}
        if boundary.throttled(str(error.get("Code") or ""), str(error.get("Message") or "")):
            # botocore's retries (standard mode, aws_max_attempts) were spent: the rest of the run would only wait.
            attempts = parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            breaker.trip(api, dependency, time.monotonic() - context.get("entmoot_started", time.monotonic()),
                         f"{error['Code']} after {attempts} attempts", throttled=True)
        elif not error:
            breaker.close(api)

    def refuse_unreadable(http_response: Any, model: Any, **_: Any) -> None:
        # botocore reads an empty JSON body as {} and one it cannot decode as nothing at all: a proxy's empty 200, or
        # an answer cut short, would read as "no alarms", "no services". XML and CBOR that do not decode raise.
        output = model.output_shape
        if http_response.status_code >= 300 or output is None or all("location" in m.serialization for m in output.members.values()):
            return
        body = http_response.content
        problem = "no body" if not body else None
        if body[:1] in (b"{", b"["):
            try:
                json.loads(body)
            except ValueError:
                problem = f"{len(body)} bytes of JSON that do not decode (cut short?)"
        if problem:
            raise DependencyError(dependency, f"unexpected answer from {dependency} {iam_action(model)}: HTTP "
                                              f"{http_response.status_code} with {problem}", reachable=True, fix=boundary.ENDPOINT_HINT)

    client.meta.events.register("before-call.*.*", before)
    client.meta.events.register("after-call-error.*.*", failed)
    client.meta.events.register("after-call.*.*", refuse_unreadable)
    client.meta.events.register("after-call.*.*", normalise_error)
    client.meta.events.register("after-call.*.*", answered)
