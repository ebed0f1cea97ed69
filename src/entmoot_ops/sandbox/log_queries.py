"""CloudWatch Logs query semantics that moto lacks: filter patterns and a Logs Insights subset.

moto matches bare and quoted terms only (a JSON or space-delimited pattern matches every event) and its Logs
Insights ignores ``filter`` and ``stats``. The suite relies on both, so the sandbox answers them as AWS does for
the forms the suite and the runbook use:

- filter patterns: terms (all must occur), ``"quoted terms"``, ``?a ?b`` (any), JSON ``{ $.f = "v*" && $.n >= 1 }``
  and space-delimited ``[a, b, c >= 1, ...]`` (as many fields as named, unless the pattern ends with ``...``);
- Insights: ``fields``, ``filter`` (``= != < <= > >=``, ``like /re/``, ``like "text"``, ``ispresent()``, ``and``,
  ``or``, ``not``), ``stats`` (``count(*)``, ``count``, ``sum``, ``avg``, ``min``, ``max``, ``pct``, ``earliest``,
  ``latest`` ... ``by`` fields or ``bin(Nm)``), ``sort`` and ``limit``. Fields of a JSON message are discovered as
  AWS does (nested keys joined with dots); ``@timestamp`` reads as AWS prints it.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Callable, Iterable
from datetime import datetime, UTC
from typing import Any

Row = dict[str, Any]


class QueryError(ValueError):
    """A query or pattern this subset does not understand: AWS would reject it as malformed too."""


# ---------------------------------------------------------------------------------------- filter patterns
def _compare(value: Any, op: str, expected: str) -> bool:
    if op in ("=", "!=") and not _is_number(expected):
        text = expected.strip('"')
        hit = value is not None and re.fullmatch(re.escape(text).replace(r"\*", ".*"), str(value)) is not None
        return hit if op == "=" else not hit
    number = _as_number(value)
    if number is None:
        return False
    return {"=": number == float(expected), "!=": number != float(expected), "<": number < float(expected),
            "<=": number <= float(expected), ">": number > float(expected), ">=": number >= float(expected)}[op]


def _is_number(text: str) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?", text.strip()) is not None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return float(value) if isinstance(value, str) and _is_number(value) else None


_JSON_TEST = re.compile(r'\s*\$\.([\w.]+)\s*(=|!=|>=|<=|>|<)\s*("[^"]*"|[^\s&|)]+)\s*')


def _json_pattern(body: str) -> Callable[[str], bool]:
    alternatives = [[_JSON_TEST.fullmatch(test) for test in alternative.split("&&")] for alternative in body.split("||")]
    if any(test is None for alternative in alternatives for test in alternative):
        raise QueryError(f"unsupported JSON filter pattern {{{body}}}")

    def matches(message: str) -> bool:
        try:
            document = json.loads(message)
        except ValueError:
            return False  # AWS: a JSON pattern never matches a line that is not JSON
        return any(all(_compare(_lookup(document, t.group(1)), t.group(2), t.group(3)) for t in alternative)
                   for alternative in alternatives)
    return matches


def _lookup(document: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return document


_FIELD_TEST = re.compile(r"\s*(\w+)\s*(?:(=|!=|>=|<=|>|<)\s*(\S+))?\s*")


def _space_delimited_pattern(body: str) -> Callable[[str], bool]:
    items = [item.strip() for item in body.split(",")]
    open_ended = items[-1] == "..."
    tests = [_FIELD_TEST.fullmatch(item) for item in (items[:-1] if open_ended else items)]
    if any(test is None for test in tests):
        raise QueryError(f"unsupported space-delimited filter pattern [{body}]")

    def matches(message: str) -> bool:
        # Fields are separated by spaces; "quoted" and [bracketed] runs are one field each.
        fields = re.findall(r'"[^"]*"|\[[^\]]*\]|\S+', message)
        if len(fields) < len(tests) or (not open_ended and len(fields) != len(tests)):
            return False
        return all(t.group(2) is None or _compare(f.strip('"[]'), t.group(2), t.group(3)) for t, f in zip(tests, fields, strict=False))
    return matches


def filter_pattern(pattern: str | None) -> Callable[[str], bool]:
    """A CloudWatch Logs filter pattern as a predicate on one event's message."""
    text = (pattern or "").strip()
    if not text:
        return lambda message: True
    if text.startswith("{") and text.endswith("}"):
        return _json_pattern(text[1:-1])
    if text.startswith("[") and text.endswith("]"):
        return _space_delimited_pattern(text[1:-1])
    terms = shlex.split(text, posix=True) if text.count('"') % 2 == 0 else text.split()
    optional = [t[1:] for t in terms if t.startswith("?")]
    if optional:
        return lambda message: any(term in message for term in optional)
    # Not a regular expression: "ERROR.*DatabaseError" is the literal text, found nowhere.
    return lambda message: all(term in message for term in terms)


class EventMessageFilter:
    """moto's filter class, with the AWS semantics above."""

    def __init__(self, pattern: str):
        self._matches = filter_pattern(pattern)

    def matches(self, message: str) -> bool:
        return self._matches(message)


# ---------------------------------------------------------------------------------------------- Insights
class _Moment(int):
    """Milliseconds since the epoch that AWS prints as a time, wherever they end up (min, max, bin)."""


def _fields(timestamp_ms: int, message: str, stream: str, group: str) -> Row:
    row: Row = {"@timestamp": _Moment(timestamp_ms), "@message": message, "@logStream": stream, "@log": group}
    try:
        document = json.loads(message)
    except ValueError:
        return row
    if isinstance(document, dict):
        _flatten(document, "", row)
    return row


def _flatten(document: dict, prefix: str, row: Row) -> None:
    for key, value in document.items():
        if isinstance(value, dict):
            _flatten(value, f"{prefix}{key}.", row)
        else:
            row[f"{prefix}{key}"] = value


_TOKEN = re.compile(r'\s*(/(?:\\/|[^/])*/|"(?:\\"|[^"])*"|\'[^\']*\'|>=|<=|!=|=|<|>|\(|\)|,|[\w@.*]+)')


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if not match:
            raise QueryError(f"cannot read the query at {text[position:position + 20]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _literal(token: str) -> Any:
    if token[0] in "\"'":
        return token[1:-1]
    if _is_number(token):
        return float(token)
    return None


class _Condition:
    """A ``filter`` expression, parsed by recursive descent: or > and > not > comparison."""

    def __init__(self, text: str):
        self.tokens, self.at = _tokens(text), 0
        self.test = self._or()
        if self.at != len(self.tokens):
            raise QueryError(f"unexpected {self.tokens[self.at]!r} in filter {text!r}")

    def _peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise QueryError("the filter ends too early")
        self.at += 1
        return token

    def _or(self) -> Callable[[Row], bool]:
        tests = [self._and()]
        while (self._peek() or "").lower() == "or":
            self._take()
            tests.append(self._and())
        return lambda row: any(t(row) for t in tests)

    def _and(self) -> Callable[[Row], bool]:
        tests = [self._not()]
        while (self._peek() or "").lower() == "and":
            self._take()
            tests.append(self._not())
        return lambda row: all(t(row) for t in tests)

    def _not(self) -> Callable[[Row], bool]:
        if (self._peek() or "").lower() == "not":
            self._take()
            inner = self._not()
            return lambda row: not inner(row)
        if self._peek() == "(":
            self._take()
            inner = self._or()
            if self._take() != ")":
                raise QueryError("unbalanced parenthesis in filter")
            return inner
        return self._comparison()

    def _comparison(self) -> Callable[[Row], bool]:
        field = self._take()
        if field.lower() == "ispresent":
            self._take()
            name = self._take()
            self._take()
            return lambda row: row.get(name) is not None
        op = self._take()
        if op.lower() == "like":
            pattern = self._take()
            regex = re.compile(pattern[1:-1]) if pattern.startswith("/") else re.compile(re.escape(pattern[1:-1]))
            return lambda row: row.get(field) is not None and regex.search(str(row[field])) is not None
        if op not in ("=", "!=", "<", "<=", ">", ">="):
            raise QueryError(f"unsupported operator {op!r}")
        expected = _literal(self._take())

        def compare(row: Row) -> bool:
            value = row.get(field)
            if value is None:
                return False
            if isinstance(expected, float):
                number = _as_number(value)
                if number is None:
                    return False
                value = number
            else:
                value = str(value)
            return {"=": value == expected, "!=": value != expected, "<": value < expected, "<=": value <= expected,
                    ">": value > expected, ">=": value >= expected}[op]
        return compare


def _percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _numbers(rows: list[Row], field: str) -> list[float]:
    return [n for n in (_as_number(r.get(field)) for r in rows) if n is not None]


def _aggregate(function: str, argument: str, rows: list[Row]) -> Any:
    present = [r for r in rows if r.get(argument) is not None]
    if function == "count":
        return len(rows) if argument == "*" else len(present)
    if function in ("earliest", "latest"):
        if not present:
            return None
        chosen = (min if function == "earliest" else max)(present, key=lambda r: r["@timestamp"])
        return chosen[argument]
    if function in ("min", "max") and argument == "@timestamp":
        return (min if function == "min" else max)(r["@timestamp"] for r in rows) if rows else None
    values = _numbers(rows, argument.split(",")[0].strip())
    if not values:
        return None
    if function == "pct":
        return _percentile(values, float(argument.split(",")[1]))
    return {"sum": sum, "avg": lambda v: sum(v) / len(v), "min": min, "max": max}[function](values)


_STAT = re.compile(r"\s*(count|sum|avg|min|max|pct|earliest|latest)\s*\(\s*([^)]*?)\s*\)\s*(?:as\s+([\w@.]+))?\s*", re.I)
_BIN = re.compile(r"bin\(\s*(\d+)\s*([smh])\s*\)", re.I)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p for p in (*parts, current) if p.strip()]


def _stats(spec: str, rows: list[Row]) -> list[Row]:
    head, *by_clause = re.split(r"\s+by\s+", spec, maxsplit=1, flags=re.I)
    by = by_clause[0] if by_clause else ""
    stats = []
    for part in _split_top_level(head):
        match = _STAT.fullmatch(part)
        if not match:
            raise QueryError(f"unsupported stats function {part.strip()!r}")
        function, argument, name = match.group(1).lower(), match.group(2), match.group(3)
        stats.append((function, argument, name or f"{function}({argument})"))
    keys = [k.strip() for k in _split_top_level(by)]
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(_group_value(k, row) for k in keys), []).append(row)
    if not keys and not groups:
        groups[()] = []
    return [{**dict(zip(keys, group, strict=True)), **{name: _aggregate(f, a, members) for f, a, name in stats}}
            for group, members in groups.items()]


def _group_value(key: str, row: Row) -> Any:
    size = _BIN.fullmatch(key)
    if not size:
        return row.get(key)
    seconds = int(size.group(1)) * {"s": 1, "m": 60, "h": 3600}[size.group(2).lower()]
    return _Moment(row["@timestamp"] // (seconds * 1000) * seconds * 1000)


def _printable(value: Any) -> str:
    if isinstance(value, _Moment):
        return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def run_query(query: str, events: Iterable[tuple[int, str, str, str]]) -> list[dict[str, str]]:
    """Run an Insights query over (timestamp ms, message, stream, group) events, answering rows as AWS prints them."""
    rows = [_fields(*event) for event in events]
    limit = 10000  # the AWS maximum of rows a query returns
    projected: list[str] | None = None
    aggregated = False
    for command in (c.strip() for c in query.split("|")):
        verb, _, rest = command.partition(" ")
        verb = verb.lower()
        if verb == "fields":
            projected = [f.strip() for f in rest.split(",")]
        elif verb == "filter":
            test = _Condition(rest).test
            rows = [r for r in rows if test(r)]
        elif verb == "stats":
            rows, aggregated = _stats(rest, rows), True
        elif verb == "sort":
            field, _, order = rest.strip().partition(" ")
            present = [r for r in rows if r.get(field) is not None]
            present.sort(key=lambda r, f=field: (0, _as_number(r[f]), "") if _as_number(r[f]) is not None else (1, 0.0, str(r[f])),
                         reverse=order.strip().lower() == "desc")
            rows = present + [r for r in rows if r.get(field) is None]
        elif verb == "limit":
            limit = int(rest)
        elif verb:
            raise QueryError(f"unsupported query command {verb!r}")
    shown = rows[:limit]
    if projected and not aggregated:
        shown = [{k: r.get(k) for k in projected} for r in shown]
    return [{k: _printable(v) for k, v in r.items() if v is not None} for r in shown]


def execute_query(log_groups: list[Any], query: str, start_time: int, end_time: int) -> list[dict[str, str]]:
    """moto's ``execute_query``: its log groups' events within [start, end] seconds, through :func:`run_query`."""
    events = ((e.timestamp, e.message, stream.log_stream_name, group.name)
              for group in log_groups for stream in list(group.streams.values()) for e in list(stream.events)
              if start_time * 1000 <= e.timestamp <= end_time * 1000 + 999)
    return run_query(query, events)
