"""Resolution of ``env:NAME`` / Secrets Manager references, and masking of every resolved secret.

Every value resolved as a secret is remembered by the process-wide :data:`masker`, which everything the suite
writes passes through (terminal, junit, summary.json, Allure, notifications, metrics, the audit log). It also
applies the run's redaction rules (:mod:`entmoot_ops.redaction`) to what was copied from the environment.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from entmoot_ops import redaction
from entmoot_ops.errors import ConfigError

MASK = redaction.MARKER.format("secret")
REFERENCE_PREFIXES = ("env:", "arn:aws:secretsmanager:")


def password_of(value: str) -> str | None:
    """The password inside a DSN or URL (key=value and URL forms), if any."""
    match = re.search(r"password\s*=\s*'?([^\s']+)", value)
    if match:
        return match.group(1)
    return urlsplit(value).password if "://" in value else None


class Masker:
    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < 4:  # masking "a" would shred every message
            return
        with self._lock:
            if secret not in self._secrets:
                self._secrets.add(secret)
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_connection_string(self, value: str) -> None:
        """Remember a DSN or URL and the password inside it (both key=value and URL forms)."""
        self.add(value)
        self.add(password_of(value))

    def __call__(self, text: str) -> str:
        if not text:
            return text
        pattern = self._pattern
        return redaction.redact(pattern.sub(MASK, text) if pattern else text)

    def data(self, value: Any) -> Any:
        """Every string of a JSON-like value masked, before it is serialised: a rule never sees JSON's escapes."""
        return redaction.walk(value, self)

    def dumps(self, value: Any, *, default: Callable[[Any], Any] = str, **options: Any) -> str:
        """``json.dumps`` of a value, masked string by string (``default`` turns what JSON lacks into JSON)."""
        return json.dumps(self.data(json.loads(json.dumps(value, default=default))), **options)


masker = Masker()


def resolve(reference: str, *, what: str, fetch_secret: Callable[[str], str] | None = None) -> str:
    """Resolve an endpoint or secret reference. ``what`` names the config key in error messages."""
    if reference.startswith("env:"):
        variable = reference[4:]
        value = os.environ.get(variable)
        if value is None or value == "":
            raise ConfigError(f"{what}: environment variable {variable} is not set")
        return value
    if reference.startswith("arn:aws:secretsmanager:"):
        if fetch_secret is None:
            raise ConfigError(f"{what}: a Secrets Manager reference needs AWS access")
        return fetch_secret(reference)
    return reference


def resolve_secret(reference: str, *, what: str, fetch_secret: Callable[[str], str] | None = None) -> str:
    value = resolve(reference, what=what, fetch_secret=fetch_secret)
    masker.add_connection_string(value)
    return value


def references(model: BaseModel, prefix: str = "") -> list[tuple[str, str]]:
    """Every (key, reference) in a configuration: values written as env:NAME or a Secrets Manager ARN."""
    found = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            found += references(value, key + ".")
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, BaseModel):
                    found += references(item, f"{key}.{getattr(item, 'name', '')}.")
                elif isinstance(item, str) and item.startswith(REFERENCE_PREFIXES):
                    found.append((key, item))
        elif isinstance(value, str) and value.startswith(REFERENCE_PREFIXES):
            found.append((key, value))
    return found
