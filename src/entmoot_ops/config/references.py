"""The kinds of value an environment file holds: secret and endpoint references, paths, host URLs, ratios; the
strict base of every section."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints



SECRET_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+)$"
SecretRef = Annotated[str, StringConstraints(pattern=SECRET_PATTERN)]
URL_SCHEMES = ("http", "https", "redis", "rediss", "unix")


def _endpoint(value: str) -> str:
    if value.startswith("env:"):
        if not re.fullmatch(r"env:[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("env: must be followed by a variable name")
        return value
    parts = urlsplit(value)
    if parts.scheme not in URL_SCHEMES or not (parts.hostname or parts.scheme == "unix"):
        raise ValueError(f"not a URL ({'|'.join(URL_SCHEMES)}://host[:port]) nor an env:NAME reference")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    return value


# An endpoint is either written out (not secret: a URL) or read from an environment variable (checked on use).
EndpointRef = Annotated[str, StringConstraints(min_length=1), AfterValidator(_endpoint)]
# A file on this machine or on a host, written out (absolute, or ~/...) or read from an environment variable.
PathRef = Annotated[str, StringConstraints(pattern=r"^(env:[A-Za-z_][A-Za-z0-9_]*|/.*|~/.*)$")]
# testinfra's connection backends (https://testinfra.readthedocs.io/en/latest/backends.html).
HOST_BACKENDS = ("local", "ssh", "paramiko", "docker", "podman", "kubectl", "openshift", "ansible", "salt", "winrm", "lxc")


def _host_url(value: str) -> str:
    scheme, separator, _ = value.partition("://")
    if not separator or scheme not in HOST_BACKENDS:
        raise ValueError(f"not a testinfra host URL ({'|'.join(HOST_BACKENDS)}://...), e.g. ssh://oncall@bastion")
    return value


HostUrl = Annotated[str, AfterValidator(_host_url)]
Ratio = Annotated[float, Field(ge=0, le=1)]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]


class Strict(BaseModel):
    # strict: `production = "yes"` or `read_seconds = "10"` is refused, not guessed (TOML has real booleans and numbers).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)



def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s)://host URL")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


