"""CloudTrail LookupEvents from the sandbox's event store, as AWS pages and filters it."""

from __future__ import annotations

import json
import threading
from datetime import datetime, UTC
from typing import Any

from moto.cloudtrail.responses import CloudTrailResponse
from moto.core.exceptions import JsonRESTError

_lock = threading.Lock()  # this extension's state is read and changed by moto's request threads



# CloudTrail events as LookupEvents returns them, with EventTime a datetime (UTC).
trail_events: list[dict[str, Any]] = []


LOOKUP_KEYS = {"EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName", "EventSource", "AccessKeyId"}


def _lookup_events(self: CloudTrailResponse) -> str:
    body = json.loads(self.body or "{}")
    start = _moment(body.get("StartTime"), datetime.min.replace(tzinfo=UTC))
    end = _moment(body.get("EndTime"), datetime.now(UTC))
    attributes = body.get("LookupAttributes") or []
    if len(attributes) > 1:
        return self._error("InvalidLookupAttributesException", "You can only specify one lookup attribute.")
    attribute = attributes[0] if attributes else None
    if attribute and attribute["AttributeKey"] not in LOOKUP_KEYS:
        return self._error("InvalidLookupAttributesException", f"Unknown attribute key {attribute['AttributeKey']}")
    with _lock:
        matching = [e for e in trail_events if start <= e["EventTime"] <= end
                    and (attribute is None or _attribute_value(e, attribute["AttributeKey"]) == attribute["AttributeValue"])]
    matching.sort(key=lambda e: e["EventTime"], reverse=True)
    size = min(int(body.get("MaxResults") or 50), 50)
    offset = int(body.get("NextToken") or 0)
    page = matching[offset:offset + size]
    answer: dict[str, Any] = {"Events": [{**e, "EventTime": e["EventTime"].timestamp()} for e in page]}
    if offset + size < len(matching):
        answer["NextToken"] = str(offset + size)
    return json.dumps(answer)


def _attribute_value(event: dict[str, Any], key: str) -> str | None:
    if key in ("ResourceType", "ResourceName"):
        return next((r.get(key) for r in event.get("Resources", []) if r.get(key)), None)
    return event.get(key)


def _moment(value: Any, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _error(self: CloudTrailResponse, code: str, message: str) -> Any:
    raise JsonRESTError(code, message)


def add_trail_events(events: list[dict[str, Any]]) -> list[str]:
    with _lock:
        trail_events.extend(events)
    return [e["EventId"] for e in events]


def remove_trail_events(ids: list[str]) -> None:
    wanted = set(ids)
    with _lock:
        trail_events[:] = [e for e in trail_events if e["EventId"] not in wanted]


def install() -> None:
    CloudTrailResponse.lookup_events = _lookup_events
    CloudTrailResponse._error = _error
