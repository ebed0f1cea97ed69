"""CloudTrail events of a window, read with LookupEvents: every write event, and every event by root.

LookupEvents takes one attribute at a time and pages by 50; the read is bounded by ``cloudtrail.max_events``
and says when that bound cut it short. Denied *reads* by ordinary principals are not read (cost).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from entmoot_ops.clients import Clients
from entmoot_ops.probes import measuring
from entmoot_ops.probes.cloudwatch import Window
from entmoot_ops.iam import needs


@dataclass(frozen=True)
class TrailEvent:
    id: str
    name: str
    source: str
    time: datetime
    principal: str
    identity_type: str
    error_code: str | None
    request: Any = field(repr=False)
    additional: Any = field(repr=False)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> TrailEvent:
        record = json.loads(raw.get("CloudTrailEvent") or "{}")
        identity = record.get("userIdentity", {})
        return cls(id=raw["EventId"], name=raw["EventName"], source=raw.get("EventSource", record.get("eventSource", "")),
                   time=raw["EventTime"], principal=identity.get("arn", raw.get("Username", "")),
                   identity_type=identity.get("type", ""), error_code=record.get("errorCode"),
                   request=record.get("requestParameters"), additional=record.get("additionalEventData"))


@dataclass(frozen=True)
class TrailScan:
    window: str
    events: tuple[TrailEvent, ...]
    complete: bool


@needs("cloudtrail:LookupEvents")
def events(clients: Clients, window: Window) -> TrailScan:
    limit = clients.env.cloudtrail.max_events
    seen: dict[str, TrailEvent] = {}
    complete = True
    with measuring("AWS CloudTrail"):
        paginator = clients.aws("cloudtrail").get_paginator("lookup_events")
        for attribute in ({"AttributeKey": "ReadOnly", "AttributeValue": "false"},
                          {"AttributeKey": "Username", "AttributeValue": "root"}):
            read = 0
            for page in paginator.paginate(StartTime=window.start, EndTime=window.end, LookupAttributes=[attribute],
                                           PaginationConfig={"PageSize": 50}):
                for raw in page.get("Events", []):
                    seen.setdefault(raw["EventId"], TrailEvent.parse(raw))
                read += len(page.get("Events", []))
                if read >= limit and page.get("NextToken"):
                    complete = False
                    break
    return TrailScan(window.describe(), tuple(sorted(seen.values(), key=lambda e: e.time)), complete)
